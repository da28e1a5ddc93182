"""Straight-through estimator: quantized values forward, identity gradients backward."""

import torch

from ternlab.bitlinear import fake_quant_act, fake_quant_weight, ste_act, ste_weight


def test_weight_ste_forward_is_fake_quant_and_gradient_is_identity():
    w = torch.randn(6, 5, requires_grad=True)
    y = ste_weight(w)
    assert torch.equal(y, fake_quant_weight(w.detach()))
    g = torch.randn(6, 5)
    y.backward(g)
    assert torch.equal(w.grad, g)


def test_act_ste_forward_is_fake_quant_and_gradient_is_identity():
    x = torch.randn(3, 4, 7, requires_grad=True)
    y = ste_act(x)
    assert torch.equal(y, fake_quant_act(x.detach()))
    g = torch.randn(3, 4, 7)
    y.backward(g)
    assert torch.equal(x.grad, g)


def test_gradient_passes_through_clamped_and_zeroed_weights():
    # Large weights clamp to +-1 and small ones round to 0; the STE still passes 1.
    w = torch.tensor([10.0, 0.01, -10.0, 0.02], requires_grad=True)
    ste_weight(w).sum().backward()
    assert torch.equal(w.grad, torch.ones(4))


def test_linear_gradients_equal_the_ste_formulas():
    torch.manual_seed(0)
    x = torch.randn(5, 8, requires_grad=True)
    w = torch.randn(3, 8, requires_grad=True)
    y = torch.nn.functional.linear(ste_act(x), ste_weight(w))
    g = torch.randn(5, 3)
    y.backward(g)
    torch.testing.assert_close(x.grad, g @ fake_quant_weight(w.detach()))
    torch.testing.assert_close(w.grad, g.t() @ fake_quant_act(x.detach()))


def test_gradient_dtype_follows_the_parameter():
    w = torch.randn(4, 4, dtype=torch.bfloat16, requires_grad=True)
    ste_weight(w).float().sum().backward()
    assert w.grad.dtype == torch.bfloat16
