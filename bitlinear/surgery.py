"""Model surgery: swap the ``nn.Linear`` layers of any torch model for ``BitLinear``."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from ternlab.bitlinear.layer import BitLinear
from ternlab.bitlinear.variants import QuantScheme

#: Names of output heads left in full precision by default (transformers,
#: GPT-NeoX, GGUF-style naming). The embeddings are ``nn.Embedding`` and are
#: never touched.
DEFAULT_EXCLUDE: tuple[str, ...] = ("lm_head", "*.lm_head", "output", "*.output", "embed_out")


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _output_head(model: nn.Module) -> nn.Module | None:
    get = getattr(model, "get_output_embeddings", None)
    try:
        return get() if callable(get) else None
    except (NotImplementedError, AttributeError):
        return None


def _to_bitlinear(
    linear: nn.Linear, input_norm: bool, norm_eps: float, scheme: QuantScheme | None = None
) -> BitLinear:
    w = linear.weight
    new = BitLinear(
        linear.in_features,
        linear.out_features,
        bias=linear.bias is not None,
        input_norm=input_norm,
        norm_eps=norm_eps,
        scheme=scheme,
        device=w.device,
        dtype=w.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(w)
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    new.train(linear.training)
    new.weight.requires_grad_(w.requires_grad)
    return new


def replace_linear(
    model: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    *,
    input_norm: bool = False,
    norm_eps: float = 1e-6,
    scheme: QuantScheme | None = None,
    hadamard: Sequence[str] = (),
) -> list[str]:
    """Replace ``nn.Linear`` modules of ``model`` in place by ``BitLinear`` with the same weights.

    Args:
        model: any torch module (a ``transformers`` causal LM, a nanoGPT, ...).
        include: glob patterns on qualified module names (``"model.layers.*.mlp.*"``);
            ``None`` means every ``nn.Linear``.
        exclude: glob patterns never to replace; ``None`` means :data:`DEFAULT_EXCLUDE`
            plus the model's output embeddings (``get_output_embeddings()``), so the
            LM head stays full precision. Pass ``[]`` to quantize the head too.
        input_norm: give each new layer an input RMSNorm (for models without SubLN).
        norm_eps: epsilon of that norm.
        scheme: the quantization scheme of the new layers (``None``: BitNet b1.58's).
        hadamard: glob patterns of layers that also get the online Hadamard transform
            before their activation quantizer (``scheme.hadamard`` set for them only).

    Returns the qualified names of the replaced modules, in model order.
    Raises ``ValueError`` if ``include`` was given and matched no ``nn.Linear``.
    """
    head = _output_head(model) if exclude is None else None
    exclude = DEFAULT_EXCLUDE if exclude is None else tuple(exclude)
    targets = [
        name
        for name, mod in model.named_modules()
        if type(mod) is nn.Linear  # subclasses (already-quantized layers) are left alone
        and mod is not head
        and (include is None or _matches(name, include))
        and not _matches(name, exclude)
    ]
    if include is not None and not targets:
        raise ValueError(f"replace_linear: `include` patterns {list(include)} matched no nn.Linear")
    for name in targets:
        layer_scheme = scheme
        if hadamard and _matches(name, hadamard):
            layer_scheme = dataclasses.replace(scheme or QuantScheme(), hadamard=True)
        new = _to_bitlinear(model.get_submodule(name), input_norm, norm_eps, layer_scheme)
        model.set_submodule(name, new)
    return targets


def bitlinear_modules(model: nn.Module) -> Iterator[tuple[str, BitLinear]]:
    """Yield ``(name, module)`` for every ``BitLinear`` in ``model``."""
    for name, mod in model.named_modules():
        if isinstance(mod, BitLinear):
            yield name, mod


def set_quant_strength(model: nn.Module, strength: float) -> None:
    """Set λ (``quant_strength``) on every ``BitLinear`` of ``model``."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"set_quant_strength: `strength` must be in [0, 1], got {strength}")
    for _, mod in bitlinear_modules(model):
        mod.quant_strength = float(strength)


def freeze(model: nn.Module) -> nn.Module:
    """Freeze every ``BitLinear`` of ``model`` (int8 codes + scale, exact integer forward)."""
    for _, mod in bitlinear_modules(model):
        mod.freeze()
    return model
