"""``ternlab sweep report DIR``: one table and one plot across the jobs of a Hydra multirun.

``ternlab train -m a=1,2 b=x,y`` writes one folder per job under the sweep folder
(``<DIR>/<job number>/``, with Hydra's ``.hydra/overrides.yaml`` and the run's
``metrics.jsonl``). The report lists, per job, the swept keys (the overrides whose
values differ between jobs) against held-out bits per byte, validation loss,
exact match (runs with ``trainer.exact_match_examples``), training tokens/s (median
of the logged windows) and the steps done, and writes ``sweep_report.{md,json,png}``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ternlab.train.tracking import METRICS_FILE, read_metrics

REPORT_STEM = "sweep_report"


@dataclass
class JobRow:
    """One job of a sweep and its results (``None`` where the run did not record it)."""

    job: str
    overrides: dict[str, str]
    status: str  # done | stopped | failed | running
    steps: int | None = None
    val_loss: float | None = None
    val_bpb: float | None = None
    exact_match: float | None = None
    tokens_per_s: float | None = None
    swept: dict[str, str] = field(default_factory=dict)


def _overrides(job_dir: Path) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(path.read_text()) or [] if path.is_file() else []
    return dict(o.split("=", 1) for o in items if "=" in o)


def _metrics_path(job_dir: Path, overrides: dict[str, str]) -> Path:
    # A job given its own trainer.output_dir wrote there (relative to the launch folder).
    own = job_dir / METRICS_FILE
    if own.is_file() or "trainer.output_dir" not in overrides:
        return own
    return Path(overrides["trainer.output_dir"]) / METRICS_FILE


def _last(records: list[dict], key: str) -> Any:
    vals = [r[key] for r in records if r.get(key) is not None]
    return vals[-1] if vals else None


def read_job(job_dir: Path) -> JobRow:
    """The results of one job folder."""
    ov = _overrides(job_dir)
    path = _metrics_path(job_dir, ov)
    if not path.is_file():
        return JobRow(job_dir.name, ov, "failed")
    rec = read_metrics(path)
    tps = [r["tokens_per_s"] for r in rec if r.get("tokens_per_s")]
    status = "done"
    if any("error" in r for r in rec):
        status = "failed"
    elif any("stopped_by" in r for r in rec):
        status = "stopped"
    elif not any("val_loss" in r for r in rec):
        status = "running"
    steps = [r["step"] for r in rec if "step" in r]
    return JobRow(
        job=job_dir.name,
        overrides=ov,
        status=status,
        steps=max(steps) if steps else None,
        val_loss=_last(rec, "val_loss"),
        val_bpb=_last(rec, "val_bpb"),
        exact_match=_last(rec, "exact_match"),
        tokens_per_s=statistics.median(tps) if tps else None,
    )


def _job_key(p: Path) -> tuple[int, str]:
    return (int(p.name), "") if p.name.isdigit() else (1 << 30, p.name)


def collect(sweep_dir: str | Path) -> list[JobRow]:
    """Every job folder of ``sweep_dir`` (in job order), with the swept keys filled in."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"sweep report: no folder {str(root)!r}; give a sweep folder")
    dirs = sorted(
        (p for p in root.iterdir() if p.is_dir() and (p / ".hydra" / "overrides.yaml").is_file()),
        key=_job_key,
    )
    if not dirs:
        raise FileNotFoundError(
            f"sweep report: {root} has no job folders (<job>/.hydra/overrides.yaml); give the "
            "folder of a `ternlab train -m ...` run (hydra.sweep.dir)"
        )
    rows = [read_job(d) for d in dirs]
    keys = sorted({k for r in rows for k in r.overrides})
    swept = [k for k in keys if len({r.overrides.get(k) for r in rows}) > 1]
    for r in rows:
        r.swept = {k: r.overrides.get(k, "(default)") for k in swept}
    return rows


def _fmt(v: Any, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def markdown(rows: list[JobRow]) -> str:
    """The report table in Markdown."""
    swept = list(rows[0].swept) if rows else []
    head = ["job", *swept, "bits/byte", "val loss", "exact match", "tokens/s", "steps", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        em = None if r.exact_match is None else 100 * r.exact_match
        cells = [
            r.job,
            *(f"`{r.swept[k]}`" for k in swept),
            _fmt(r.val_bpb, ".4f"),
            _fmt(r.val_loss, ".4f"),
            "–" if em is None else f"{em:.1f} %",
            _fmt(r.tokens_per_s, ",.0f"),
            _fmt(r.steps, "d"),
            r.status,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[JobRow], out: Path, title: str) -> Path:
    """Bars per job: held-out bits per byte, exact match (if any) and tokens/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        f"{r.job}: " + ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in r.swept.items())
        for r in rows
    ]
    panels = [("held-out bits/byte", [r.val_bpb for r in rows])]
    if any(r.exact_match is not None for r in rows):
        panels.append(("exact match (%)", [(r.exact_match or 0) * 100 for r in rows]))
    panels.append(("train tokens/s", [r.tokens_per_s for r in rows]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 1.2 + 0.45 * len(rows)))
    for ax, (name, vals) in zip(axes, panels, strict=True):
        ax.barh(range(len(rows)), [v if v is not None else 0 for v in vals])
        ax.set_yticks(range(len(rows)), labels if ax is axes[0] else [""] * len(rows))
        ax.invert_yaxis()
        ax.set_xlabel(name)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``sweep_report.md``, ``.json`` and ``.png`` (default: into the sweep folder)."""
    rows = collect(sweep_dir)
    out = Path(out_dir or sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{REPORT_STEM}.md"
    md.write_text(f"# Sweep {Path(sweep_dir)}\n\n{markdown(rows)}")
    js = out / f"{REPORT_STEM}.json"
    js.write_text(
        json.dumps(
            {
                "sweep_dir": str(sweep_dir),
                "swept": list(rows[0].swept),
                "jobs": [asdict(r) for r in rows],
            },
            indent=2,
        )
    )
    png = plot(rows, out / f"{REPORT_STEM}.png", f"sweep {Path(sweep_dir).name}")
    return {"md": md, "json": js, "png": png}
