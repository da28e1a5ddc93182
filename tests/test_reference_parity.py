"""The spec equals the published BitNet b1.58 references, bit for bit.

transformers' BitNet integration is imported and run for real (its
``torch.compile`` wrappers are bypassed through ``__wrapped__``: compiling on
CPU takes minutes and changes nothing in the arithmetic).
"""

import types

import pytest
import torch

from ternlab.bitlinear import (
    BitLinear,
    act_quant,
    dequant_act,
    fake_quant_act,
    fake_quant_weight,
    pack_hf_bitnet,
    weight_quant,
)

hf_bitnet = pytest.importorskip("transformers.integrations.bitnet")


def _one_bit_llm_weight_quant(w):
    # 1bitLLM/bitnet_b1_58 utils_quant.py, as published.
    dtype = w.dtype
    w = w.float()
    s = 1 / w.abs().mean().clamp(min=1e-5)
    return ((w * s).round().clamp(-1, 1) / s).type(dtype)


def _one_bit_llm_act_quant(x):
    dtype = x.dtype
    x = x.float()
    s = 127 / x.abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)
    return ((x * s).round().clamp(-128, 127) / s).type(dtype)


def _inputs():
    g = torch.Generator().manual_seed(0)
    yield torch.randn(64, 48, generator=g)
    yield torch.randn(7, 3, 33, generator=g) * 40
    yield (torch.rand(16, 16, generator=g) - 0.5) * 1e-6  # below eps
    yield torch.tensor([[0.5, -0.5, 1.5, 1.5]])  # exact ties


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_weight_fake_quant_matches_transformers_and_1bitllm(dtype):
    for w in _inputs():
        w = w.to(dtype)
        ours = fake_quant_weight(w)
        assert torch.equal(ours, hf_bitnet.WeightQuant.forward.__wrapped__(None, w))
        assert torch.equal(ours, _one_bit_llm_weight_quant(w))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_act_fake_quant_matches_transformers_and_1bitllm(dtype):
    for x in _inputs():
        x = x.to(dtype)
        ours = fake_quant_act(x)
        assert torch.equal(ours, hf_bitnet.ActQuant.forward.__wrapped__(None, x))
        assert torch.equal(ours, _one_bit_llm_act_quant(x))


def test_codes_match_transformers_offline_activation_quant():
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(1))
    hf_codes, hf_scale = hf_bitnet.BitLinear.activation_quant.__wrapped__(None, x)
    q = act_quant(x)
    assert torch.equal(q.codes, hf_codes) and torch.equal(q.inv_scale, hf_scale)


def _hf_offline_layer(monkeypatch, layer: BitLinear) -> torch.nn.Module:
    """A transformers BitLinear (packed, offline) holding our frozen weights."""
    monkeypatch.setattr(hf_bitnet, "unpack_weights", hf_bitnet.unpack_weights.__wrapped__)
    hf = hf_bitnet.BitLinear(layer.in_features, layer.out_features, bias=False, dtype=torch.float32)
    q = weight_quant(layer.weight.detach())
    hf.weight.copy_(pack_hf_bitnet(q.codes))
    # transformers divides by weight_scale: it holds s_w = 1 / scale.
    hf.weight_scale.copy_(1.0 / q.scale)
    for name in ("activation_quant", "post_quant_process"):
        fn = getattr(hf_bitnet.BitLinear, name).__wrapped__
        setattr(hf, name, types.MethodType(fn, hf))
    return hf


def test_frozen_layer_matches_transformers_packed_bitlinear(monkeypatch):
    torch.manual_seed(0)
    layer = BitLinear(96, 64)
    hf = _hf_offline_layer(monkeypatch, layer)
    x = torch.randn(3, 11, 96)
    ours = layer.freeze()(x)
    torch.testing.assert_close(hf(x), ours, rtol=1e-6, atol=1e-6)


def test_training_layer_matches_transformers_online_autobitlinear(monkeypatch):
    torch.manual_seed(0)
    ours = BitLinear(32, 24)
    hf = hf_bitnet.AutoBitLinear(32, 24, bias=False, online_quant=True)
    hf.weight.data.copy_(ours.weight.data)
    monkeypatch.setattr(
        hf_bitnet.WeightQuant, "forward", staticmethod(hf_bitnet.WeightQuant.forward.__wrapped__)
    )
    monkeypatch.setattr(
        hf_bitnet.ActQuant, "forward", staticmethod(hf_bitnet.ActQuant.forward.__wrapped__)
    )
    x = torch.randn(4, 32)
    assert torch.equal(hf(x), ours(x))


def test_dequant_act_is_the_reference_division():
    x = torch.randn(6, 10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(dequant_act(act_quant(x)), _one_bit_llm_act_quant(x))
