"""The exact int8 matmul against int64 arithmetic."""

import pytest
import torch

from ternlab.bitlinear import int8_matmul


def _exact(a, b_t):
    return (a.to(torch.int64).unsqueeze(-2) * b_t.to(torch.int64)).sum(-1)


@pytest.mark.parametrize("k", [1, 7, 1032, 5000])
def test_int8_by_int8_is_exact(k):
    g = torch.Generator().manual_seed(k)
    a = torch.randint(-128, 128, (3, k), generator=g, dtype=torch.int8)
    b = torch.randint(-128, 128, (4, k), generator=g, dtype=torch.int8)
    assert torch.equal(int8_matmul(a, b).to(torch.int64), _exact(a, b))


def test_saturated_ternary_accumulators_are_exact_beyond_float32_mantissa():
    k = 140_000  # 128 * k > 2**24: would round in float32, so float64 must be chosen
    a = torch.full((2, k), -128, dtype=torch.int8)
    a[1, ::2] = 127
    b = torch.ones(3, k, dtype=torch.int8)
    b[1] = -1
    b[2, 1::2] = 0
    out = int8_matmul(a, b, b_max_abs=1)
    assert out.dtype == torch.int32
    assert torch.equal(out.to(torch.int64), _exact(a, b))


def test_batched_leading_dims():
    a = torch.randint(-127, 128, (2, 3, 10), dtype=torch.int8)
    b = torch.randint(-1, 2, (6, 10), dtype=torch.int8)
    assert torch.equal(int8_matmul(a, b, b_max_abs=1).to(torch.int64), _exact(a, b))


def test_bad_arguments():
    a = torch.zeros(2, 4, dtype=torch.int8)
    with pytest.raises(TypeError, match="int8 inputs"):
        int8_matmul(a.float(), a)
    with pytest.raises(ValueError, match=r"`b_t` must be \[N, K=4\]"):
        int8_matmul(a, torch.zeros(2, 5, dtype=torch.int8))
