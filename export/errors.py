"""The exception of export and import: a message naming the file, the field and the fix."""

from __future__ import annotations


class ExportError(ValueError):
    """An export or import that cannot be done as asked; nothing was written."""
