"""Training of ternary and FP16 baseline models (Hydra configs in ``ternlab.conf``).

Programmatic use::

    from ternlab.train import compose, train
    result = train(compose(["model=tiny", "trainer.max_steps=50", "tracking=disabled"]))
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy: `ternlab --help` imports ternlab.train.cli and must not pay for torch/transformers.
_EXPORTS = {
    "compose": "ternlab.train.app",
    "train": "ternlab.train.loop",
    "TrainResult": "ternlab.train.loop",
    "NonFiniteLossError": "ternlab.train.loop",
    "TrainConfig": "ternlab.train.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ternlab.train' has no attribute {name!r}")
