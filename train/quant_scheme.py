"""From the ``quant`` config group to BitLinear's :class:`QuantScheme` (ablation variants)."""

from __future__ import annotations

from ternlab.bitlinear.variants import QuantScheme
from ternlab.train.config import QuantConfig

#: The ``quant.*`` keys of the ablation variants and their BitNet b1.58 defaults.
VARIANT_DEFAULTS = {
    "weight_scale": "tensor",
    "weight_estimator": "absmean",
    "act_bits": 8,
    "hadamard_modules": [],
}


def quant_scheme(cfg: QuantConfig) -> QuantScheme:
    """The scheme of every BitLinear (the Hadamard flag is set per layer by the surgery)."""
    return QuantScheme(
        weight_scale=cfg.weight_scale,
        group_size=cfg.weight_group_size,
        estimator=cfg.weight_estimator,
        act_bits=cfg.act_bits,
    )


def variant_key_values(cfg: QuantConfig) -> dict[str, object]:
    """``{"quant.<key>": value}`` for each key that differs from BitNet b1.58 (empty: default).

    Saved as ``ternlab_quant`` in a checkpoint's ``config.json``, where the exporter reads it.
    """
    out = {
        f"quant.{k}": list(getattr(cfg, k)) if k == "hadamard_modules" else getattr(cfg, k)
        for k, default in VARIANT_DEFAULTS.items()
        if (list(getattr(cfg, k)) if k == "hadamard_modules" else getattr(cfg, k)) != default
    }
    if cfg.weight_scale == "group":
        out["quant.weight_group_size"] = cfg.weight_group_size
    return out
