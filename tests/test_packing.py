"""2-bit packing of ternary codes: round trips, layouts, and transformers' own packer."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ternlab.bitlinear import pack_hf_bitnet, pack_ternary, unpack_hf_bitnet, unpack_ternary


def _codes(*shape, seed=0):
    return torch.randint(
        -1, 2, shape, dtype=torch.int8, generator=torch.Generator().manual_seed(seed)
    )


def test_row_layout_by_hand():
    # fields c+1: [2, 1, 0, 2] -> 0b10_00_01_10 (first value in the low bits).
    packed = pack_ternary(torch.tensor([[1, 0, -1, 1, -1]], dtype=torch.int8))
    assert packed.dtype == torch.uint8
    assert packed.tolist() == [[0b10000110, 0b01010100]]  # second byte padded with zero codes


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 6), k=st.integers(1, 70), seed=st.integers(0, 2**31 - 1))
def test_row_layout_round_trips(rows, k, seed):
    c = _codes(rows, k, seed=seed)
    packed = pack_ternary(c)
    assert packed.shape == (rows, -(-k // 4))
    assert torch.equal(unpack_ternary(packed, k), c)


def test_hf_layout_by_hand():
    # out=8, R=2: packed row r holds weight rows r, r+2, r+4, r+6 in bits 0-1, 2-3, 4-5, 6-7.
    codes = torch.tensor([[0], [-1], [-1], [1], [1], [0], [1], [-1]], dtype=torch.int8)
    packed = pack_hf_bitnet(codes)
    assert packed.shape == (2, 1)
    assert packed[0, 0] == (1 | 0 << 2 | 2 << 4 | 2 << 6)
    assert packed[1, 0] == (0 | 2 << 2 | 1 << 4 | 0 << 6)


@pytest.mark.parametrize("shape", [(4, 1), (8, 12), (64, 33), (256, 7)])
def test_hf_layout_equals_transformers_pack_weights(shape):
    hf_bitnet = pytest.importorskip("transformers.integrations.bitnet")
    c = _codes(*shape, seed=shape[0])
    ours = pack_hf_bitnet(c)
    assert torch.equal(ours, hf_bitnet.pack_weights(c.clone()))  # pack_weights mutates its input
    unpacked = hf_bitnet.unpack_weights.__wrapped__(ours, dtype=torch.float32)
    assert torch.equal(unpacked, c.float())
    assert torch.equal(unpack_hf_bitnet(ours), c)


def test_all_zero_and_all_extreme_codes():
    for value, field in ((0, 0b01010101), (1, 0b10101010), (-1, 0)):
        c = torch.full((4, 8), value, dtype=torch.int8)
        assert bool((pack_ternary(c) == field).all())
        assert bool((pack_hf_bitnet(c) == field).all())


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"`codes` holds values outside \[-1, 1\]"):
        pack_ternary(torch.tensor([2], dtype=torch.int8))
    with pytest.raises(TypeError, match="`codes` has dtype torch.float32"):
        pack_ternary(torch.zeros(4))
    with pytest.raises(ValueError, match="not a multiple of 4"):
        pack_hf_bitnet(_codes(6, 4))
    with pytest.raises(ValueError, match="invalid 2-bit field"):
        unpack_ternary(torch.tensor([[0xFF]], dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="invalid 2-bit field"):
        unpack_hf_bitnet(torch.tensor([[0b11000000]], dtype=torch.uint8))
    with pytest.raises(ValueError, match="`packed` has 2 bytes per row; 9 codes need 3"):
        unpack_ternary(torch.zeros(1, 2, dtype=torch.uint8), 9)
    with pytest.raises(TypeError, match="`packed` has dtype torch.int8"):
        unpack_ternary(torch.zeros(1, 2, dtype=torch.int8), 8)
