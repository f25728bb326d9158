"""Exceptions shared by the library and the CLI (importing this module is free: no torch)."""


class NonFiniteOutputError(RuntimeError):
    """A network produced NaN/inf values; nothing was written (CLI exit code 1)."""


def one_line(message: BaseException | str, limit: int | None = None) -> str:
    """`message` (an exception's text, or its type name when empty) on one line, cut to `limit` characters."""
    text = " ".join(str(message).split()) or (type(message).__name__ if isinstance(message, BaseException) else "")
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
