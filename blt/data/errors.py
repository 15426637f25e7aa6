"""The data pipeline's one error type (its own module so the format readers and the sources share it)."""

from __future__ import annotations

from blt.core.errors import InputError


class DataError(InputError):
    """A corpus path is missing or unreadable, a record lacks its text, or a corpus has no text."""


__all__ = ["DataError"]
