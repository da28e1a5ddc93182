"""Ternary codes <-> 2-bit packed bytes (4 codes a byte).

Each code c in {-1, 0, +1} is stored as the 2-bit field ``c + 1`` in {0, 1, 2};
the field value 3 is invalid and rejected on unpacking. Two layouts:

* **ternlab row layout** (:func:`pack_ternary`): along the last dimension, value
  ``4*i + j`` of a row lives in bits ``2j .. 2j+1`` of byte ``i`` (least
  significant first); a row of K codes takes ``ceil(K / 4)`` bytes, padded with
  the zero code (field 1).
* **transformers ``quant_method: bitnet`` layout** (:func:`pack_hf_bitnet`): a
  weight ``[out, in]`` becomes ``uint8 [out / 4, in]``; with ``R = out / 4``,
  row ``i*R + r`` of the weight lives in bits ``2i .. 2i+1`` of packed row ``r``
  (the four quarters of the rows share each byte). This is what transformers'
  ``pack_weights``/``unpack_weights`` and microsoft/bitnet-b1.58-2B-4T use.
"""

from __future__ import annotations

import torch

from ternlab.bitlinear.checks import check_codes

VALUES_PER_BYTE = 4
_SHIFTS = (0, 2, 4, 6)


def _fields(codes: torch.Tensor) -> torch.Tensor:
    check_codes("codes", codes, lo=-1, hi=1)
    return (codes + 1).to(torch.uint8)


def _codes_from_fields(fields: torch.Tensor, name: str) -> torch.Tensor:
    if bool((fields == 3).any()):
        raise ValueError(
            f"`{name}` holds the invalid 2-bit field 0b11; it is not a ternary packing"
        )
    return fields.to(torch.int8) - 1


def _pack_groups(fields: torch.Tensor) -> torch.Tensor:
    """OR four fields (stacked in dim 0) into one byte, the first in the low bits."""
    out = torch.zeros_like(fields[0])
    for j, shift in enumerate(_SHIFTS):
        out |= fields[j] << shift
    return out


def _unpack_groups(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_pack_groups`: fields stacked in a new dim 0."""
    return torch.stack([(packed >> s) & 3 for s in _SHIFTS])


def pack_ternary(codes: torch.Tensor) -> torch.Tensor:
    """Pack int8 codes ``[..., K]`` into ``uint8 [..., ceil(K/4)]`` (ternlab row layout)."""
    fields = _fields(codes)
    k = fields.shape[-1]
    pad = (-k) % VALUES_PER_BYTE
    if pad:
        ones = torch.ones(*fields.shape[:-1], pad, dtype=torch.uint8, device=fields.device)
        fields = torch.cat([fields, ones], dim=-1)
    grouped = fields.reshape(*fields.shape[:-1], -1, VALUES_PER_BYTE).movedim(-1, 0)
    return _pack_groups(grouped)


def unpack_ternary(packed: torch.Tensor, k: int) -> torch.Tensor:
    """Unpack ``uint8 [..., ceil(k/4)]`` (ternlab row layout) into int8 codes ``[..., k]``."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"`packed` has dtype {packed.dtype}; expected torch.uint8")
    need = -(-k // VALUES_PER_BYTE)
    if packed.shape[-1] != need:
        raise ValueError(
            f"`packed` has {packed.shape[-1]} bytes per row; {k} codes need {need} "
            "(`k` or the data is wrong)"
        )
    fields = _unpack_groups(packed).movedim(0, -1).reshape(*packed.shape[:-1], -1)[..., :k]
    return _codes_from_fields(fields, "packed")


def pack_hf_bitnet(codes: torch.Tensor) -> torch.Tensor:
    """Pack a ternary weight ``[out, in]`` into transformers' layout ``uint8 [out/4, in]``."""
    if codes.dim() != 2:
        raise ValueError(f"`codes` must be a 2-D weight [out, in], got shape {tuple(codes.shape)}")
    if codes.shape[0] % VALUES_PER_BYTE:
        raise ValueError(
            f"`codes` has out_features={codes.shape[0]}, not a multiple of 4: transformers' "
            "BitLinear allocates out_features // 4 packed rows and could not load it"
        )
    fields = _fields(codes)
    return _pack_groups(fields.reshape(VALUES_PER_BYTE, -1, codes.shape[1]))


def unpack_hf_bitnet(packed: torch.Tensor) -> torch.Tensor:
    """Unpack transformers' bitnet layout ``uint8 [out/4, in]`` into int8 codes ``[out, in]``."""
    if packed.dtype != torch.uint8 or packed.dim() != 2:
        raise TypeError(
            f"`packed` must be a 2-D torch.uint8 tensor, "
            f"got {packed.dtype} of shape {tuple(packed.shape)}"
        )
    fields = _unpack_groups(packed).reshape(-1, packed.shape[1])
    return _codes_from_fields(fields, "packed")
