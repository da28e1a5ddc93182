"""Property tests of the quantizers (hypothesis)."""

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ternlab.bitlinear import act_quant, dequant_act, weight_quant
from ternlab.bitlinear.spec import EPS

finite32 = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)
shapes = st.tuples(st.integers(1, 6), st.integers(1, 40))
matrices = shapes.flatmap(lambda s: arrays(np.float32, s, elements=finite32))
powers_of_two = st.integers(-20, 20).map(lambda e: 2.0**e)

SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(matrices)
def test_weight_codes_follow_the_formula(w_np):
    w = torch.from_numpy(w_np)
    q = weight_quant(w)
    s_w = 1.0 / w.abs().mean().clamp(min=EPS)
    assert torch.equal(q.codes.float(), torch.round(w * s_w).clamp(-1, 1))
    assert q.scale > 0
    # A code never has the opposite sign of its weight.
    assert not bool(((q.codes.float() * w) < 0).any())


@SETTINGS
@given(matrices, powers_of_two)
def test_weight_codes_are_invariant_to_power_of_two_scaling(w_np, p):
    w = torch.from_numpy(w_np)
    assume(float(w.abs().mean()) * min(p, 1.0) > EPS * 4)  # keep clear of the eps clamp
    a, b = weight_quant(w), weight_quant(w * p)
    assert torch.equal(a.codes, b.codes)
    assert torch.equal(a.scale * p, b.scale)


@SETTINGS
@given(matrices)
def test_act_codes_bounds_and_error(x_np):
    x = torch.from_numpy(x_np)
    q = act_quant(x)
    assert int(q.codes.min()) >= -127 and int(q.codes.max()) <= 127
    amax = x.abs().amax(-1, keepdim=True)
    big = (amax >= EPS).squeeze(-1)
    assert bool((q.codes[big].abs().amax(-1) == 127).all())
    # Round-to-nearest: error at most half a step (max|x| / 127 / 2), plus float slack.
    step = amax.clamp(min=EPS) / 127
    assert bool(((dequant_act(q) - x).abs() <= step * (0.5 + 1e-5)).all())


@SETTINGS
@given(matrices)
def test_act_quant_is_per_token(x_np):
    x = torch.from_numpy(x_np)
    q = act_quant(x)
    for i in range(x.shape[0]):
        row = act_quant(x[i : i + 1])
        assert torch.equal(row.codes[0], q.codes[i]) and torch.equal(
            row.inv_scale[0], q.inv_scale[i]
        )


@SETTINGS
@given(matrices, powers_of_two)
def test_act_codes_are_invariant_to_power_of_two_scaling(x_np, p):
    x = torch.from_numpy(x_np)
    assume(float(x.abs().amax(-1).min()) * min(p, 1.0) > EPS * 4)
    assert torch.equal(act_quant(x).codes, act_quant(x * p).codes)


@SETTINGS
@given(matrices, st.sampled_from([torch.float16, torch.bfloat16]))
def test_low_precision_equals_float32_of_the_same_values(x_np, dtype):
    x = torch.from_numpy(x_np).to(dtype)
    assume(bool(torch.isfinite(x).all()))
    assert torch.equal(act_quant(x).codes, act_quant(x.float()).codes)
    assert torch.equal(weight_quant(x).codes, weight_quant(x.float()).codes)
