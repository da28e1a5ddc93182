"""The quantization-strength schedule λ: 0 → 1 for fine-tuning a full-precision model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantStrengthSchedule:
    """Linear warmup of λ from ``start`` to 1 over ``warmup_steps`` optimizer steps.

    ``warmup_steps = 0`` means λ = 1 from the first step (training from scratch).
    """

    warmup_steps: int = 0
    start: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ValueError(
                f"QuantStrengthSchedule: `warmup_steps` must be >= 0, got {self.warmup_steps}"
            )
        if not 0.0 <= self.start <= 1.0:
            raise ValueError(f"QuantStrengthSchedule: `start` must be in [0, 1], got {self.start}")

    def __call__(self, step: int) -> float:
        """λ at optimizer step ``step`` (0-based)."""
        if self.warmup_steps == 0 or step >= self.warmup_steps:
            return 1.0
        return self.start + (1.0 - self.start) * max(step, 0) / self.warmup_steps
