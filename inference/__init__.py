"""The CPU inference engine for GGUF ternary models.

``from ternlab.inference import Engine`` (see :mod:`ternlab.inference.engine`). The
names are imported on first use, so importing this package stays cheap and never
loads the C++ extension or torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ternlab.inference.engine import Engine, GenerationStats, PerplexityResult

__all__ = ["Engine", "GenerationStats", "PerplexityResult"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ternlab.inference import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'ternlab.inference' has no attribute {name!r}")
