"""The benchmark scripts run and write the JSON they promise (timings are not checked)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bitlinear_cpu  # noqa: E402


def test_bitlinear_cpu_quick_writes_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert bitlinear_cpu.main(["--quick", "--out", str(out), "--warmup", "0"]) == 0
    report = json.loads(out.read_text())
    assert report["benchmark"] == "bitlinear_cpu" and report["repeats"] == 3
    (row,) = report["results"]
    assert set(row["median_ms"]) == {
        "nn.Linear fwd+bwd",
        "BitLinear fwd+bwd",
        "nn.Linear fwd",
        "BitLinear fwd",
        "BitLinear frozen fwd",
    }
    assert all(v > 0 for v in row["median_ms"].values())
    ratio = row["median_ms"]["BitLinear fwd+bwd"] / row["median_ms"]["nn.Linear fwd+bwd"]
    assert row["ratio_train_vs_linear"] == ratio
    assert "BitLinear vs nn.Linear" in capsys.readouterr().out
