"""Exceptions shared by the library and the CLI (importing this module is free: no torch)."""


class NonFiniteOutputError(RuntimeError):
    """A network produced NaN/inf values; nothing was written (CLI exit code 1)."""


def one_line(message: BaseException | str, limit: int | None = None) -> str:
    """`message` (an exception's text, or its type name when empty) on one line, cut to `limit` characters."""
    text = " ".join(str(message).split()) or (type(message).__name__ if isinstance(message, BaseException) else "")
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


#: Exceptions whose text alone says what went wrong (a bad option, a failed computation, memory).
SELF_EXPLAINED = (ValueError, RuntimeError, MemoryError, OSError)


def debugging() -> bool:
    """Whether NCVSD_DEBUG asks for tracebacks (set, and not "0"): errors then propagate instead of being told in
    one line."""
    import os

    return os.environ.get("NCVSD_DEBUG", "0").strip() not in ("", "0")


def described(exc: BaseException) -> str:
    """One line telling `exc`: its text for SELF_EXPLAINED types; for any other (a plug-in's KeyError, whose text
    alone is a bare key) its type's name first and where to get the traceback."""
    if isinstance(exc, SELF_EXPLAINED):
        return one_line(exc)
    return f"{type(exc).__name__}: {one_line(exc)} (set NCVSD_DEBUG=1 for a traceback)"
