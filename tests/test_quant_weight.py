"""Absmean ternary weight quantization against hand-computed cases."""

import pytest
import torch

from ternlab.bitlinear import dequant_weight, weight_quant
from ternlab.bitlinear.spec import EPS

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def codes(values, dtype=torch.float32):
    return weight_quant(torch.tensor(values, dtype=dtype)).codes.tolist()


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_round_half_to_even(dtype):
    # mean(|W|) = 1 so s_w = 1: W * s_w lands exactly on the .5 ties.
    assert codes([0.5, -0.5, 1.5, 1.5], dtype) == [0, 0, 1, 1]
    assert codes([2.5, 0.5, 0.5, 0.5], dtype) == [1, 0, 0, 0]
    assert codes([-2.5, -0.5, 0.5, 0.5], dtype) == [-1, 0, 0, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_clamps_to_ternary(dtype):
    # mean 0.625 -> s_w = 1.6: 1.5*1.6 = 2.4 clamps to 1, 0.5*1.6 = 0.8 rounds to 1.
    q = weight_quant(torch.tensor([[0.5, -0.5], [1.5, 0.0]], dtype=dtype))
    assert q.codes.dtype == torch.int8
    assert q.codes.tolist() == [[1, -1], [1, 0]]
    assert q.scale.dtype == torch.float32 and q.scale.dim() == 0
    assert q.scale.item() == pytest.approx(0.625, rel=1e-6)


def test_scale_is_reciprocal_of_reciprocal_in_float32():
    w = torch.tensor([0.3, -0.7, 0.1, 0.0])
    s_w = torch.tensor(1.0) / torch.tensor(0.275)  # mean(|w|) = 1.1 / 4
    assert torch.equal(weight_quant(w).scale, torch.tensor(1.0) / s_w)


def test_all_zero_tensor():
    q = weight_quant(torch.zeros(3, 5))
    assert torch.equal(q.codes, torch.zeros(3, 5, dtype=torch.int8))
    # mean is clamped to eps, so the scale is eps (to float32 rounding of 1/(1/eps)).
    assert q.scale.item() == pytest.approx(EPS, rel=1e-6)
    assert torch.equal(dequant_weight(q), torch.zeros(3, 5))


def test_very_small_values_use_eps():
    # mean 7.5e-6 < eps: s_w = 1/eps = 1e5, so 2e-5 -> 2 -> 1 and 1e-5 -> 1.
    assert codes([2e-5, -1e-5, 0.0, 0.0]) == [1, -1, 0, 0]
    assert codes([1e-30, -3e-30, 0.0, 5e-31]) == [0, 0, 0, 0]


def test_very_large_values():
    w = torch.tensor([1.0, -1.0, 0.2, 0.0]) * 1e30  # mean 0.55e30: 1/0.55 = 1.8 -> 1
    q = weight_quant(w)
    assert q.codes.tolist() == [1, -1, 0, 0]
    assert q.scale.item() == pytest.approx(0.55e30, rel=1e-6)


def test_fp16_extremes():
    w = torch.tensor([65504.0, -65504.0, 6e-8, 0.0], dtype=torch.float16)
    assert weight_quant(w).codes.tolist() == [1, -1, 0, 0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_are_upcast_exactly(dtype):
    w = torch.randn(37, 19, generator=torch.Generator().manual_seed(0)).to(dtype)
    q, q32 = weight_quant(w), weight_quant(w.float())
    assert torch.equal(q.codes, q32.codes) and torch.equal(q.scale, q32.scale)


def test_dequant_is_codes_times_scale():
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    q = weight_quant(w)
    assert torch.equal(dequant_weight(q), q.codes.float() * q.scale)
    assert dequant_weight(q, torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.tensor([1, 0, -1]), TypeError, "`weight` has dtype torch.int64"),
        ([0.5, 1.0], TypeError, "`weight` must be a torch.Tensor"),
        (torch.tensor(1.0), ValueError, "`weight` must have at least 1 dimension"),
        (torch.empty(0, 4), ValueError, "`weight` is empty"),
        (torch.tensor([1.0, float("nan")]), ValueError, "`weight` contains 1 non-finite"),
        (torch.tensor([1.0, float("inf"), -float("inf")]), ValueError, "2 non-finite"),
        (torch.full((4,), 3e38), ValueError, "not representable in float32"),
    ],
)
def test_bad_input_names_the_argument(bad, error, match):
    with pytest.raises(error, match=match):
        weight_quant(bad)
