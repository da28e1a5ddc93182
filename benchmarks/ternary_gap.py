"""The ternary-vs-FP gap on real text: held-out bits per byte, plain recipe and with distillation.

Three runs with identical data, tokenizer, schedule and token count: the FP twin
(``quant=none``), the plain ternary recipe (``quant=ternary``) and the ternary model
distilled from that FP twin (``distill=<preset>``, teacher = the FP run). Writes a
JSON with every run's held-out loss and bits per byte and the two ratios
ternary / FP. Run from the project root (the data configs' paths are relative)::

    nice python benchmarks/ternary_gap.py --steps 500 --out benchmarks/results/ternary_gap.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from ternlab.train import compose, train


def _run(name: str, common: list[str], extra: list[str], runs: Path) -> dict:
    out = runs / name
    t0 = time.perf_counter()
    res = train(compose([*common, *extra, f"trainer.output_dir={out}"]))
    if res.stopped_by is not None:  # SIGTERM/SIGINT: the run saved and stopped; so do we
        raise SystemExit(f"{name}: stopped by {res.stopped_by} at step {res.steps}")
    return {
        "overrides": extra,
        "val_loss": res.val_loss,
        "val_bpb": res.val_bpb,
        "steps": res.steps,
        "seconds": round(time.perf_counter() - t0, 1),
        "checkpoint": str(res.checkpoint),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--data", default="tinyshakespeare")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--eval-batches", type=int, default=12)
    ap.add_argument("--distill", default="kl", help="conf/distill preset for the third run")
    ap.add_argument("--runs", default="runs/ternary_gap", help="folder of the three runs")
    ap.add_argument("--out", default="benchmarks/results/ternary_gap.json")
    args = ap.parse_args()

    runs = Path(args.runs)
    if runs.exists():
        raise SystemExit(f"{runs} exists; remove it or pass --runs elsewhere")
    common = [
        f"model={args.preset}",
        f"data={args.data}",
        "tracking=disabled",
        "trainer.progress=false",
        "trainer.plot=false",
        f"trainer.max_steps={args.steps}",
        f"trainer.batch_size={args.batch}",
        f"trainer.eval_every={args.steps}",
        f"trainer.save_every={args.steps}",
        f"trainer.eval_batches={args.eval_batches}",
    ]
    results = {"fp": _run("fp", common, ["quant=none"], runs)}
    results["ternary"] = _run("ternary", common, ["quant=ternary"], runs)
    teacher = Path(results["fp"]["checkpoint"])
    results["ternary_kd"] = _run(
        "ternary_kd",
        common,
        ["quant=ternary", f"distill={args.distill}", f"distill.teacher={teacher}"],
        runs,
    )
    cfg = compose(common)
    tokens = args.steps * args.batch * cfg.data.seq_len
    report = {
        "benchmark": "ternary_gap",
        "preset": args.preset,
        "data": args.data,
        "tokens_per_run": tokens,
        "runs": results,
        "ratio_bpb_plain": results["ternary"]["val_bpb"] / results["fp"]["val_bpb"],
        "ratio_bpb_kd": results["ternary_kd"]["val_bpb"] / results["fp"]["val_bpb"],
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k.startswith("ratio")}, indent=2))


if __name__ == "__main__":
    main()
