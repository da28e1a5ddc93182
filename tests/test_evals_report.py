"""``ternlab eval compare`` / ``bench`` on real tiny models: every report field, the files,
and numbers that agree with what was measured."""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("lm_eval")
# Every test here uses the tiny models trained and exported once per session (~15 s).
pytestmark = pytest.mark.slow

from test_evals_models import TRAIN_EXAMPLES, eval_models  # noqa: E402

from ternlab.evals import rapl  # noqa: E402
from ternlab.evals.cli import add_demo_command, add_eval_command  # noqa: E402
from ternlab.evals.report import FILES, SUMMARY_FIELDS, missing_fields  # noqa: E402


def ternlab(*argv: str) -> int:
    """The ``ternlab`` parser with the eval commands (as ternlab.cli registers them)."""
    p = argparse.ArgumentParser(prog="ternlab")
    sub = p.add_subparsers()
    add_eval_command(sub)
    add_demo_command(sub)
    args = p.parse_args(list(argv))
    return args.func(args)


SMALL = ["--threads", "1", "--arith-n", "3", "--train-examples", str(TRAIN_EXAMPLES),
         "--ppl-docs", "4", "--max-gen-toks", "24", "--n-prompt", "16", "--n-gen", "8",
         "--repetitions", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    m = eval_models(tmp_path_factory)
    out = tmp_path_factory.mktemp("report")
    rc = ternlab("eval", "compare", "--baseline", str(m["fp_gguf"]), "--model", str(m["tern_gguf"]),
                 "--baseline-checkpoint", str(m["fp_ckpt"]), "--model-checkpoint",
                 str(m["tern_ckpt"]), "-o", str(out), *SMALL)  # fmt: skip
    assert rc == 0
    return out, json.loads((out / "report.json").read_text()), m


def test_report_has_every_field_and_file(report):
    out, rep, _ = report
    assert missing_fields(rep) == []
    for name in FILES:
        assert (out / name).stat().st_size > 0
    for name in FILES[2:]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "| fp16 (engine)" in md and "| ternary (engine)" in md
    assert ("(est.)" in md) == (not rapl.available())
    assert "Engine vs PyTorch perplexity" in md


def test_report_numbers_are_the_measurements(report):
    out, rep, m = report
    fp, tern = rep["summary"]
    assert (fp["label"], tern["label"]) == ("fp16", "ternary")
    assert not fp["ternary"] and tern["ternary"]
    assert fp["file_size_bytes"] == m["fp_gguf"].stat().st_size
    assert tern["file_size_bytes"] == m["tern_gguf"].stat().st_size < fp["file_size_bytes"]
    r = rep["ratios_vs_baseline"]["ternary"]
    assert r["file_size"] == pytest.approx(fp["file_size_bytes"] / tern["file_size_bytes"])
    assert r["decode_speedup"] == pytest.approx(
        tern["decode_tokens_per_s"] / fp["decode_tokens_per_s"]
    )
    for row in (fp, tern):
        assert all(row[k] is not None for k in SUMMARY_FIELDS)
        assert row["arith_n"] == 3 and 0 <= row["arith_strict_match"] <= 1
        assert row["decode_ms_per_token"] == pytest.approx(1000 / row["decode_tokens_per_s"])
        assert row["peak_rss_bytes"] > row["file_size_bytes"]
        # Engine and PyTorch perplexity of the same weights agree.
        assert row["ppl_arith_heldout_rel_diff_vs_pytorch"] < 2e-3
    # The arithmetic estimate: the ternary model needs less energy per token.
    assert tern["energy_j_per_token_estimate_7nm"] < fp["energy_j_per_token_estimate_7nm"]


def test_bench_command_on_a_checkpoint(tmp_path_factory, tmp_path, capsys):
    """PyTorch checkpoints get the same speed fields as GGUF files (pp/tg, RSS, energy)."""
    m = eval_models(tmp_path_factory)
    out = tmp_path / "bench.json"
    assert ternlab("eval", "bench", str(m["tern_ckpt"]), "--n-prompt", "8", "--n-gen", "4",
                   "--repetitions", "1", "-o", str(out)) == 0  # fmt: skip
    res = json.loads(out.read_text())
    assert res["backend"] == "pytorch" and res["n_prompt"] == 8
    assert res["pp"]["tokens_per_s"] > 0 and res["tg"]["n_tokens"] == 4
    assert res["energy"]["tg"]["method"] in ("rapl", "estimate")
    assert res["energy"]["ternary_arithmetic"] is True


def test_errors_are_one_line(tmp_path, capsys):
    assert ternlab("eval", "bench", str(tmp_path / "nope.gguf")) == 1
    assert "error:" in capsys.readouterr().err
