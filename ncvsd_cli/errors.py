"""Exceptions shared by the library and the CLI (importing this module is free: no torch)."""


class NonFiniteOutputError(RuntimeError):
    """A network produced NaN/inf values; nothing was written (CLI exit code 1)."""
