"""Imports every built-in operator module so that they register."""

from operators import blur, inpainting, resize, simple  # noqa: F401
