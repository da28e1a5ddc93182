"""Quantization variants (ablation knobs), each against its own plain reference."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ternlab.bitlinear import BitLinear, weight_quant
from ternlab.bitlinear.spec import EPS
from ternlab.bitlinear.variants import (
    QuantScheme,
    act_quant_bits,
    dequant_weight_scheme,
    hadamard,
    weight_quant_scheme,
)


def _w(out=8, inp=64, seed=0) -> torch.Tensor:
    return torch.randn(out, inp, generator=torch.Generator().manual_seed(seed))


def test_default_scheme_is_the_spec_bit_for_bit():
    w = _w()
    a, b = weight_quant_scheme(w, QuantScheme()), weight_quant(w)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.scale, b.scale)
    assert QuantScheme().is_default and QuantScheme().differences() == {}


def test_per_channel_is_per_tensor_applied_to_each_row():
    w = _w()
    q = weight_quant_scheme(w, QuantScheme(weight_scale="channel"))
    assert q.scale.shape == (8, 1)
    for r in range(w.shape[0]):
        ref = weight_quant(w[r])  # the spec's per-tensor quantizer on one row
        assert torch.equal(q.codes[r], ref.codes), r
        torch.testing.assert_close(q.scale[r, 0], ref.scale, rtol=1e-6, atol=0)


def test_per_group_is_per_tensor_applied_to_each_group():
    w, g = _w(inp=96), 32
    scheme = QuantScheme(weight_scale="group", group_size=g)
    q = weight_quant_scheme(w, scheme)
    assert q.scale.shape == (8, 3)
    deq = dequant_weight_scheme(q, scheme)
    for r in range(8):
        for j in range(3):
            ref = weight_quant(w[r, j * g : (j + 1) * g])
            assert torch.equal(q.codes[r, j * g : (j + 1) * g], ref.codes), (r, j)
            torch.testing.assert_close(q.scale[r, j], ref.scale, rtol=1e-6, atol=0)
            torch.testing.assert_close(deq[r, j * g : (j + 1) * g], ref.codes * ref.scale)


def test_absmedian_reference():
    w = _w(inp=63)  # 504 values, even: the lower of the two middle values (torch.median)
    q = weight_quant_scheme(w, QuantScheme(estimator="absmedian"))
    med = sorted(w.abs().flatten().tolist())[(w.numel() - 1) // 2]
    s = 1.0 / max(med, EPS)
    ref = [max(-1, min(1, round(v * s))) for v in w.flatten().tolist()]
    assert q.codes.flatten().tolist() == ref
    torch.testing.assert_close(q.scale, torch.tensor(1.0 / s), rtol=1e-6, atol=0)
    # a real change from absmean: the median magnitude is below the mean for Gaussian weights
    assert not torch.equal(q.codes, weight_quant(w).codes)


def test_four_bit_activations_reference():
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    x[2] = 0.0
    q = act_quant_bits(x, 4)
    for t in range(5):
        a = max(float(x[t].abs().max()), EPS)
        ref = [max(-8, min(7, round(v * 7 / a))) for v in x[t].tolist()]
        assert q.codes[t].tolist() == ref, t
    assert q.codes.abs().max() <= 7 and (q.codes[2] == 0).all()


def _sylvester(n: int) -> torch.Tensor:
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def test_hadamard_matches_the_sylvester_matrix_and_is_orthonormal():
    x = torch.randn(3, 5, 64)
    y = hadamard(x)  # butterflies in float32: equal to the matrix product within rounding
    torch.testing.assert_close(y, x @ _sylvester(64).T / 8.0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hadamard(y), x, rtol=1e-5, atol=1e-6)  # its own inverse
    with pytest.raises(ValueError, match="power of two"):
        hadamard(torch.randn(2, 48))


def _layer(scheme: QuantScheme, inp=64, out=16) -> BitLinear:
    torch.manual_seed(0)
    return BitLinear(inp, out, scheme=scheme, kernel="torch")


@pytest.mark.parametrize(
    "scheme",
    [
        QuantScheme(weight_scale="channel"),
        QuantScheme(weight_scale="group", group_size=16),
        QuantScheme(estimator="absmedian"),
        QuantScheme(act_bits=4),
        QuantScheme(act_bits=4, hadamard=True),
    ],
    ids=["channel", "group", "absmedian", "a4", "a4-hadamard"],
)
def test_layer_forward_backward_and_frozen(scheme):
    layer = _layer(scheme)
    x = torch.randn(4, 7, 64, requires_grad=True)
    y = layer(x)
    # plain reference of the training forward: fake-quantized weight times fake-quantized input
    xin = hadamard(x.detach()) if scheme.hadamard else x.detach()
    qx = act_quant_bits(xin, scheme.act_bits)
    ref = torch.nn.functional.linear(
        qx.codes.float() / qx.inv_scale,
        dequant_weight_scheme(weight_quant_scheme(layer.weight.detach(), scheme), scheme),
    )
    torch.testing.assert_close(y.detach(), ref)
    y.sum().backward()  # straight-through: the latent weight gets a gradient
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    frozen = layer.freeze()
    torch.testing.assert_close(frozen(x.detach()), ref, rtol=2e-5, atol=2e-5)
    # unfreeze gives back the dequantized weight, which re-quantizes to the same codes
    codes = frozen.weight_codes.clone()
    frozen.unfreeze()
    assert torch.equal(weight_quant_scheme(frozen.weight.detach(), scheme).codes, codes)


def test_each_variant_changes_the_output_of_the_default():
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(3))
    base = _layer(QuantScheme())(x)
    for change in (
        {"weight_scale": "channel"},
        {"estimator": "absmedian"},
        {"act_bits": 4},
        {"act_bits": 4, "hadamard": True},
    ):
        y = _layer(dataclasses.replace(QuantScheme(), **change))(x)
        assert not torch.allclose(y, base), change


def test_bad_schemes_are_refused():
    with pytest.raises(ValueError, match="act_bits"):
        QuantScheme(act_bits=2)
    with pytest.raises(ValueError, match="group_size=48 does not divide"):
        BitLinear(64, 8, scheme=QuantScheme(weight_scale="group", group_size=48))
    with pytest.raises(ValueError, match="power-of-two"):
        BitLinear(96, 8, scheme=QuantScheme(hadamard=True))
