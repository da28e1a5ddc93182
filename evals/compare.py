"""``ternlab eval compare``: run a baseline and a ternary model through one suite, one report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ternlab.evals.suite import Progress, SuiteConfig, _quiet, run_suite


def compare(
    baseline: str | Path,
    model: str | Path,
    cfg: SuiteConfig,
    out_dir: str | Path,
    commands: list[str],
    baseline_checkpoint: str | Path | None = None,
    model_checkpoint: str | Path | None = None,
    labels: tuple[str, str] = ("fp16", "ternary"),
    progress: Progress = _quiet,
) -> tuple[dict[str, Any], list[Path]]:
    """Evaluate both models with ``cfg`` and write the report into ``out_dir``.

    ``*_checkpoint`` (optional) are the PyTorch checkpoints a GGUF file was exported
    from: their perplexity is computed too and the report shows the agreement.
    """
    from ternlab.evals import report

    results = [
        run_suite(baseline, cfg, labels[0], baseline_checkpoint, progress),
        run_suite(model, cfg, labels[1], model_checkpoint, progress),
    ]
    progress("writing the report")
    rep = report.build(results, cfg.to_dict(), commands)
    return rep, report.write(rep, out_dir)
