"""``ternlab demo`` end to end on the ``tiny`` preset: train both, export, evaluate, report."""

from __future__ import annotations

import pytest

pytest.importorskip("lm_eval")

from ternlab.evals.pipeline import DemoConfig, run_demo, train_overrides  # noqa: E402
from ternlab.evals.report import FILES, missing_fields  # noqa: E402

TINY = [
    # I2_S packs rows in units of 128 values; the tiny preset's are 64.
    "model.hidden_size=128",
    "model.intermediate_size=256",
    "data.seq_len=64",
    "trainer.batch_size=8",
    "trainer.eval_every=1000",
    "trainer.eval_batches=1",
    "trainer.plot=false",
    "optim.warmup_steps=1",
]


def test_both_runs_share_everything_but_quant(tmp_path):
    cfg = DemoConfig(out_dir=str(tmp_path), preset="tiny", steps=7, overrides=TINY)
    tern, fp = train_overrides(cfg, "ternary"), train_overrides(cfg, "none")
    differ = {a.split("=")[0] for a, b in zip(tern, fp, strict=True) if a != b}
    assert differ == {"quant", "trainer.output_dir"}
    assert f"data.cache_dir={tmp_path / 'cache'}" in tern  # one tokenizer for both


@pytest.mark.slow
def test_demo_on_tiny_preset(tmp_path):
    cfg = DemoConfig(
        out_dir=str(tmp_path),
        preset="tiny",
        steps=12,
        train_examples=400,
        eval_n=3,
        ppl_docs=4,
        max_gen_toks=24,
        n_prompt=16,
        n_gen=8,
        repetitions=1,
        overrides=TINY,
        progress=False,
    )
    res = run_demo(cfg, "ternlab demo --preset tiny")
    assert missing_fields(res.report) == []
    assert sorted(f.name for f in res.files) == sorted(FILES)
    fp, tern = res.report["summary"]
    assert fp["backend"] == tern["backend"] == "engine"
    assert tern["file_size_bytes"] < fp["file_size_bytes"]
    assert res.ggufs["ternary"].name == "model-i2_s.gguf"
    for row in (fp, tern):
        assert row["ppl_arith_heldout_rel_diff_vs_pytorch"] < 2e-3
        assert row["arith_n"] == 3
    cmds = res.report["commands"]
    assert cmds[0] == "ternlab demo --preset tiny"
    assert cmds[1].startswith("ternlab train model=tiny quant=ternary")
    assert any(c.startswith("ternlab eval compare") for c in cmds)
