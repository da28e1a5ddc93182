"""Run tracking: ``metrics.jsonl``, wandb (online / offline / disabled) and a rich progress bar."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ternlab.train.config import TrackingConfig

METRICS_FILE = "metrics.jsonl"


class MetricsFile:
    """Append-only JSON-lines log of every metric record (one dict per line)."""

    def __init__(self, output_dir: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(output_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self._truncate_after(resume_step)

    def _truncate_after(self, step: int) -> None:
        # Records past the resumed checkpoint belong to the interrupted attempt: drop
        # them, so the file reads as one uninterrupted run.
        if not self.path.exists():
            return
        keep = [
            ln
            for ln in self.path.read_text().splitlines()
            if ln.strip() and json.loads(ln).get("step", 0) <= step
        ]
        self.path.write_text("".join(ln + "\n" for ln in keep))

    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` with a wall-clock timestamp."""
        with open(self.path, "a") as f:
            f.write(json.dumps({**record, "time": round(time.time(), 3)}) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file."""
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


class WandbRun:
    """A wandb run, or nothing at all when ``tracking.mode=disabled`` (wandb not even imported)."""

    def __init__(
        self,
        cfg: TrackingConfig,
        run_name: str,
        output_dir: str | Path,
        config: dict[str, Any],
        resume: bool,
    ) -> None:
        self.run = None
        if cfg.mode == "disabled":
            return
        import wandb

        Path(output_dir).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            mode=cfg.mode,
            project=cfg.project,
            entity=cfg.entity,
            name=cfg.name or run_name,
            tags=list(cfg.tags),
            dir=str(output_dir),
            config=config,
            # Same id on resume: wandb continues the run instead of starting a new one.
            id=_run_id(output_dir),
            resume="allow" if resume else None,
        )

    def log(self, record: dict[str, Any], step: int) -> None:
        """Forward a metrics record to wandb."""
        if self.run is not None:
            self.run.log(
                {k: v for k, v in record.items() if k != "step" and v is not None}, step=step
            )

    def finish(self, exit_code: int = 0) -> None:
        """Close the run (flushes offline files)."""
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


def _run_id(output_dir: str | Path) -> str:
    path = Path(output_dir) / ".wandb_run_id"
    if not path.exists():
        import secrets

        path.write_text(secrets.token_hex(4))
    return path.read_text().strip()


def make_progress(enabled: bool) -> Progress:
    """A rich progress bar showing loss, tokens/s, learning rate and ETA."""
    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TextColumn("lr {task.fields[lr]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
    )
