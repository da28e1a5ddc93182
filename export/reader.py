"""Open a GGUF file (I2_S included) with clear errors, and read its keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ternlab.export.errors import ExportError
from ternlab.export.i2s import TernaryGGUFReader


def open_gguf(path: str | Path) -> TernaryGGUFReader:
    """``GGUFReader`` of ``path``; a truncated or corrupt file raises :class:`ExportError`."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such GGUF file")
    try:
        reader = TernaryGGUFReader(path)
    except Exception as e:  # gguf-py raises ValueError/IndexError/... on damaged files
        raise ExportError(
            f"{path}: not a readable GGUF file ({type(e).__name__}: {e}); the file is truncated "
            "or corrupt, export it again"
        ) from e
    for t in reader.tensors:
        if t.data.nbytes != t.n_bytes:
            raise ExportError(
                f"{path}: tensor {t.name} needs {t.n_bytes} bytes but the file ends after "
                f"{t.data.nbytes}; the file is truncated, export it again"
            )
    return reader


def get(reader: TernaryGGUFReader, key: str, default: Any = ...) -> Any:
    """The value of a metadata key (strings decoded, arrays as lists)."""
    field = reader.fields.get(key)
    if field is None:
        if default is ...:
            raise ExportError(f"{reader.data.filename}: GGUF key {key!r} is missing")
        return default
    return field.contents()


def architecture(reader: TernaryGGUFReader) -> str:
    return get(reader, "general.architecture")


def arch_key(reader: TernaryGGUFReader, suffix: str, default: Any = ...) -> Any:
    """An architecture-scoped key, e.g. ``bitnet.block_count``."""
    return get(reader, f"{architecture(reader)}.{suffix}", default)
