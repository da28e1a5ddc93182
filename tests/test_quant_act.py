"""Per-token absmax int8 activation quantization against hand-computed cases."""

import pytest
import torch

from ternlab.bitlinear import act_quant, dequant_act
from ternlab.bitlinear.spec import EPS

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES)
def test_hand_computed_token(dtype):
    # max|x| = 127 -> s_x = 1: codes are round-half-even of x itself.
    x = torch.tensor([[127.0, -127.0, 0.5, 1.5, 2.5, -0.5, -1.5, 3.0]], dtype=dtype)
    q = act_quant(x)
    assert q.codes.dtype == torch.int8
    assert q.codes.tolist() == [[127, -127, 0, 2, 2, 0, -2, 3]]
    assert q.inv_scale.dtype == torch.float32
    assert q.inv_scale.tolist() == [[1.0]]


def test_scale_is_per_token_over_last_dim():
    x = torch.tensor([[[1.0, -2.0], [0.25, 0.5]], [[4.0, 0.0], [-8.0, 8.0]]])
    q = act_quant(x)
    assert q.inv_scale.shape == (2, 2, 1)
    expected = torch.tensor([[[63.5], [254.0]], [[31.75], [15.875]]])
    assert torch.equal(q.inv_scale, expected)
    # 1 * 63.5 = 63.5 -> 64 (half to even), -2 * 63.5 = -127.
    assert q.codes[0, 0].tolist() == [64, -127]
    assert q.codes[1, 1].tolist() == [-127, 127]


def test_all_zero_rows_give_zero_codes():
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]])
    q = act_quant(x)
    assert q.codes[0].tolist() == [0, 0, 0]
    assert q.inv_scale[0].item() == pytest.approx(127 / EPS, rel=1e-6)
    assert q.codes[1].tolist() == [127, -127, 64]  # 0.5 * 127 = 63.5 -> 64
    assert torch.equal(dequant_act(q)[0], torch.zeros(3))


def test_very_small_and_very_large_tokens():
    tiny = torch.tensor([[1e-7, -3e-7, 0.0]])  # max < eps: s_x = 127 / eps
    assert act_quant(tiny).codes.tolist() == [[1, -4, 0]]  # 1.27 -> 1, -3.81 -> -4
    huge = torch.tensor([[2.0**127, -(2.0**127), 2.0**126]])  # exact powers of two
    assert act_quant(huge).codes.tolist() == [[127, -127, 64]]  # 63.5 -> 64


def test_codes_never_reach_minus_128():
    x = torch.randn(256, 97, generator=torch.Generator().manual_seed(0)) * 1e3
    codes = act_quant(x).codes
    assert int(codes.min()) >= -127 and int(codes.max()) <= 127
    assert (codes.abs() == 127).sum(-1).ge(1).all()  # the absmax element of each token


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_are_upcast_exactly(dtype):
    x = torch.randn(5, 33, generator=torch.Generator().manual_seed(2)).to(dtype)
    q, q32 = act_quant(x), act_quant(x.float())
    assert torch.equal(q.codes, q32.codes) and torch.equal(q.inv_scale, q32.inv_scale)


def test_dequant_divides_in_float32_then_casts():
    x = torch.randn(4, 9, generator=torch.Generator().manual_seed(3))
    q = act_quant(x)
    assert torch.equal(dequant_act(q), q.codes.float() / q.inv_scale)
    assert dequant_act(q, torch.float16).dtype == torch.float16
    assert (dequant_act(q) - x).abs().max() <= x.abs().max() / 127 / 2 * 1.0001


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.ones(2, 3, dtype=torch.int8), TypeError, "`x` has dtype torch.int8"),
        (torch.tensor(2.0), ValueError, "`x` must have at least 1 dimension"),
        (torch.empty(3, 0), ValueError, "`x` is empty"),
        (torch.tensor([[0.0, float("nan")]]), ValueError, "`x` contains 1 non-finite"),
    ],
)
def test_bad_input_names_the_argument(bad, error, match):
    with pytest.raises(error, match=match):
        act_quant(bad)


def test_multiplier_is_reciprocal_then_times_127():
    # The spec's two float32 roundings (what PyTorch does for `127 / tensor`),
    # which differ from one division 127/a in the last bit for many inputs.
    x = torch.rand(4096, 3, generator=torch.Generator().manual_seed(4)) * 10 + 1e-3
    a = x.abs().amax(-1, keepdim=True)
    q = act_quant(x)
    assert torch.equal(q.inv_scale, torch.reciprocal(a) * 127)
    one_division = torch.div(torch.full_like(a, 127.0, dtype=torch.float64), a.double()).float()
    assert not torch.equal(q.inv_scale, one_division)
