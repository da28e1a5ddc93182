"""bitnet.cpp's I2_S tensor type (ggml type id 36), which gguf-py does not know.

Layout (bitnet.cpp ``quantize_i2_s``, x86 build, ``QK_I2_S = 128``), for a
tensor of ``n`` values in ggml order (row-major ``[out, in]``, ``in`` fastest):

* 2-bit fields ``code + 1``: ``-1 -> 0b00``, ``0 -> 0b01``, ``+1 -> 0b10``.
* Blocks of 128 consecutive values, 32 bytes each. Byte ``p`` (0..31) of block
  ``b`` holds values ``128b + p``, ``+32``, ``+64``, ``+96`` in bits 7-6, 5-4,
  3-2, 1-0 (the first value in the *high* bits).
* After the ``n / 4`` code bytes: the per-tensor scale as little-endian
  float32, then 28 zero bytes (32 bytes in all). Tensor size ``n / 4 + 32``.

Everything about the unknown type id lives here: :func:`add_i2s_tensor` writes
the tensor info with the raw id through ``GGUFWriter.add_tensor`` (passing the
bytes as int8 so gguf-py does not look the id up), and :class:`TernaryGGUFReader`
is ``GGUFReader`` taught to read type 36 back instead of raising.
"""

from __future__ import annotations

import numpy as np
from gguf import GGUFReader, GGUFWriter
from gguf.gguf_reader import ReaderTensor

from ternlab.export.errors import ExportError

I2S_TYPE_ID = 36
#: bitnet.cpp's ``LLAMA_FTYPE_MOSTLY_I2_S`` (``general.file_type``).
I2S_FILE_TYPE = 40
BLOCK = 128
SCALE_BYTES = 32  # float32 scale + padding


def i2s_nbytes(n: int) -> int:
    """Bytes of an I2_S tensor of ``n`` values."""
    return n // 4 + SCALE_BYTES


def pack_i2s(codes: np.ndarray, scale: float) -> np.ndarray:
    """Ternary int8 ``codes`` (any shape, ``size % 128 == 0``) and a float32 scale -> I2_S bytes."""
    if codes.size % BLOCK:
        raise ExportError(f"I2_S needs a multiple of {BLOCK} values, got {codes.size}")
    fields = (codes.reshape(-1, 4, 32).astype(np.int16) + 1).astype(np.uint8)
    packed = (fields[:, 0] << 6) | (fields[:, 1] << 4) | (fields[:, 2] << 2) | fields[:, 3]
    tail = np.zeros(SCALE_BYTES, dtype=np.uint8)
    tail[:4] = np.array([scale], dtype="<f4").view(np.uint8)
    return np.concatenate([packed.reshape(-1), tail])


def unpack_i2s(data: np.ndarray, n: int) -> tuple[np.ndarray, np.float32]:
    """I2_S bytes -> (int8 codes of ``n`` values, float32 scale); rejects the field 0b11."""
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    if data.size != i2s_nbytes(n):
        raise ExportError(f"I2_S tensor has {data.size} bytes; {n} values need {i2s_nbytes(n)}")
    packed = data[: n // 4].reshape(-1, 32)
    fields = np.stack([(packed >> s) & 3 for s in (6, 4, 2, 0)], axis=1)
    if (fields == 3).any():
        raise ExportError("I2_S tensor holds the invalid 2-bit field 0b11: not a ternary tensor")
    scale = data[n // 4 : n // 4 + 4].view("<f4")[0]
    return fields.reshape(-1).astype(np.int8) - 1, np.float32(scale)


def add_i2s_tensor(writer: GGUFWriter, name: str, codes: np.ndarray, scale: float) -> None:
    """Add ``codes * scale`` (shape ``[out, in]``) to ``writer`` as an I2_S tensor."""
    data = pack_i2s(codes, scale)
    # int8, not uint8: gguf-py converts uint8 byte shapes through its type table, which lacks 36.
    writer.add_tensor(name, data.view(np.int8), raw_shape=codes.shape, raw_dtype=I2S_TYPE_ID)


class TernaryGGUFReader(GGUFReader):
    """``GGUFReader`` that also reads I2_S tensors (``tensor_type == 36``, data: the raw bytes)."""

    def _build_tensors(self, start_offs: int, fields: list) -> None:
        tensors: list[ReaderTensor] = []
        for f in fields:
            if int(f.parts[4][0]) == I2S_TYPE_ID:
                tensors.append(self._i2s_tensor(start_offs, f))
            else:
                super()._build_tensors(start_offs, [f])
                tensors.extend(self.tensors)
        self.tensors = tensors

    def _i2s_tensor(self, start_offs: int, f) -> ReaderTensor:
        _, name, _, dims, _, offset = f.parts
        n = int(np.prod(dims))
        nbytes = i2s_nbytes(n)
        data_offs = int(start_offs + offset[0])
        return ReaderTensor(
            name=str(bytes(name), encoding="utf-8"),
            tensor_type=I2S_TYPE_ID,  # type: ignore[arg-type]
            shape=dims,
            n_elements=n,
            n_bytes=nbytes,
            data_offset=data_offs,
            data=self._get(data_offs, np.uint8, nbytes),
            field=f,
        )
