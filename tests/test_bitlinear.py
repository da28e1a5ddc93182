"""BitLinear: training mode equals the spec, frozen mode is the exact integer computation."""

import pytest
import torch
import torch.nn.functional as F

from ternlab.bitlinear import (
    BitLinear,
    RMSNorm,
    act_quant,
    fake_quant_act,
    fake_quant_weight,
    weight_quant,
)

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Frozen vs training-mode eval: the same integers, summed and rounded in a
# different order. Tolerances relative to the output's scale, per dtype.
FROZEN_RTOL = {torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}  # ~2 ulp


def _layer(k=48, n=20, dtype=torch.float32, **kw):
    torch.manual_seed(0)
    return BitLinear(k, n, dtype=dtype, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_training_mode_output_is_the_spec(dtype, training):
    layer = _layer(dtype=dtype).train(training)
    x = torch.randn(2, 5, 48).to(dtype)
    expected = F.linear(fake_quant_act(x), fake_quant_weight(layer.weight.detach()))
    out = layer(x)
    assert out.dtype == dtype
    assert torch.equal(out, expected)


def test_defaults_match_nn_linear_shape_and_no_bias():
    layer = BitLinear(16, 8)
    assert layer.bias is None and layer.weight.shape == (8, 16)
    assert layer(torch.randn(3, 16)).shape == (3, 8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_frozen_equals_training_eval_output(dtype):
    layer = _layer(dtype=dtype).eval()
    x = (torch.randn(4, 7, 48) * 3).to(dtype)
    with torch.no_grad():
        ref = layer(x).float()
    out = layer.freeze()(x)
    assert out.dtype == dtype
    scale = ref.abs().max()
    assert (out.float() - ref).abs().max() <= FROZEN_RTOL[dtype] * scale


def test_frozen_integer_accumulators_are_exact():
    layer = _layer(k=200, n=33)
    x = torch.randn(3, 9, 200)
    q_w = weight_quant(layer.weight.detach())
    layer.freeze()
    assert torch.equal(layer.weight_codes, q_w.codes) and torch.equal(layer.weight_scale, q_w.scale)
    acc, s_x = layer.integer_forward(x)
    q_x = act_quant(x)
    exact = (q_x.codes.long().unsqueeze(-2) * q_w.codes.long()).sum(-1)
    assert acc.dtype == torch.int32 and torch.equal(acc.long(), exact)
    assert torch.equal(s_x, q_x.inv_scale)
    # The output is exactly one float32 rescale of the accumulators.
    assert torch.equal(layer(x), acc.float() * (q_w.scale / q_x.inv_scale))


def test_frozen_state_dict_holds_codes_and_scale_only():
    layer = _layer().freeze()
    sd = layer.state_dict()
    assert set(sd) == {"weight_codes", "weight_scale"}
    assert sd["weight_codes"].dtype == torch.int8 and sd["weight_scale"].dtype == torch.float32
    other = BitLinear(48, 20).freeze()
    other.load_state_dict(sd)
    x = torch.randn(2, 48)
    assert torch.equal(other(x), layer(x))


def test_unfreeze_restores_a_trainable_layer_with_the_same_codes():
    layer = _layer().freeze()
    codes = layer.weight_codes.clone()
    layer.unfreeze()
    assert isinstance(layer.weight, torch.nn.Parameter) and not layer.frozen
    assert torch.equal(weight_quant(layer.weight.detach()).codes, codes)


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_quant_strength_blends_outputs(lam):
    layer = _layer()
    layer.quant_strength = lam
    x = torch.randn(6, 48)
    w = layer.weight.detach()
    fp, quant = F.linear(x, w), F.linear(fake_quant_act(x), fake_quant_weight(w))
    torch.testing.assert_close(layer(x), (1 - lam) * fp + lam * quant, rtol=1e-6, atol=1e-6)


def test_blended_gradient_reaches_the_latent_weight():
    layer = _layer()
    layer.quant_strength = 0.5
    x = torch.randn(6, 48, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and x.grad is not None
    assert layer.weight.grad.abs().sum() > 0


def test_input_norm_is_applied_before_quantization():
    layer = _layer(input_norm=True, norm_eps=1e-5)
    assert isinstance(layer.norm, RMSNorm)
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 48) * 10
    normed = layer.norm(x)
    expected = F.linear(fake_quant_act(normed), fake_quant_weight(layer.weight.detach()))
    assert torch.equal(layer(x), expected)
    assert "norm.weight" in layer.state_dict()


def test_rmsnorm_matches_transformers_llama_rmsnorm():
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    ref = llama.LlamaRMSNorm(32, eps=1e-6).to(torch.bfloat16)
    ours = RMSNorm(32, eps=1e-6, dtype=torch.bfloat16)
    with torch.no_grad():
        ref.weight.normal_()
        ours.weight.copy_(ref.weight)
    x = torch.randn(4, 32, dtype=torch.bfloat16)
    assert torch.equal(ours(x), ref(x))


def test_bias_is_added_after_the_rescale():
    layer = _layer(bias=True)
    x = torch.randn(2, 48)
    no_bias = F.linear(fake_quant_act(x), fake_quant_weight(layer.weight.detach()))
    assert torch.equal(layer(x), no_bias + layer.bias)
    frozen = layer.freeze()
    assert "bias" in frozen.state_dict()


def test_wrong_input_shape_names_the_argument():
    with pytest.raises(
        ValueError, match=r"input `x` has last dimension 47, expected in_features=48"
    ):
        _layer()(torch.randn(2, 47))


def test_bad_construction_and_misuse():
    with pytest.raises(ValueError, match="`in_features` and `out_features` must be positive"):
        BitLinear(0, 4)
    with pytest.raises(RuntimeError, match=r"needs a frozen layer; call .freeze\(\) first"):
        _layer().integer_forward(torch.randn(1, 48))


def test_freeze_refuses_non_finite_weights():
    layer = _layer()
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="`weight` contains 1 non-finite"):
        layer.freeze()
    assert not layer.frozen and isinstance(layer.weight, torch.nn.Parameter)
