"""A real 4-job Hydra multirun of the tiny preset, then `ternlab sweep report` over it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ternlab.cli import main as ternlab_main
from ternlab.train.tracking import read_metrics


@pytest.mark.slow
def test_four_job_sweep_one_folder_per_job_and_a_report_row_each(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "ternlab.train",
        "-m",
        "model=tiny",
        "tracking=disabled",
        "data.seq_len=32",
        "data.arith.num_examples=400",
        "trainer.batch_size=4",
        "trainer.max_steps=3",
        "trainer.log_every=1",
        "trainer.eval_every=3",
        "trainer.eval_batches=1",
        "trainer.progress=false",
        "trainer.plot=false",
        "trainer.exact_match_examples=2",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={sweep}",
        "quant=ternary,none",
        "optim.lr=1e-3,3e-3",
    ]
    # Every job used to get the same runs/${run_name} and the second one failed.
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in range(4):
        rec = read_metrics(sweep / str(job) / "metrics.jsonl")
        assert any("val_bpb" in r for r in rec) and any("exact_match" in r for r in rec)
        assert (sweep / str(job) / "checkpoints" / "latest").is_file()
    assert not (tmp_path / "runs").exists()

    assert ternlab_main(["sweep", "report", str(sweep)]) == 0
    table = capsys.readouterr().out
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| job")]
    assert len(rows) == 4, table
    report = json.loads((sweep / "sweep_report.json").read_text())
    assert report["swept"] == ["optim.lr", "quant"]
    assert [j["swept"] for j in report["jobs"]] == [
        {"optim.lr": lr, "quant": q} for q in ("ternary", "none") for lr in ("0.001", "0.003")
    ]
    for j in report["jobs"]:
        assert j["status"] == "done" and j["steps"] == 3
        assert j["val_bpb"] > 0 and j["tokens_per_s"] > 0 and 0 <= j["exact_match"] <= 1
        bpb = [r for r in read_metrics(sweep / j["job"] / "metrics.jsonl") if "val_bpb" in r]
        assert j["val_bpb"] == bpb[-1]["val_bpb"]
    assert (sweep / "sweep_report.png").stat().st_size > 1000
    assert "| 3 | `0.003` | `none` |" in (sweep / "sweep_report.md").read_text()


def test_report_refuses_a_folder_without_jobs(tmp_path, capsys):
    assert ternlab_main(["sweep", "report", str(tmp_path)]) == 1
    assert "has no job folders" in capsys.readouterr().out
