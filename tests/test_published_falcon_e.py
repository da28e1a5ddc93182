"""tiiuae Falcon-E (tiny replicas): the ``prequantized`` revision (bfloat16 latent Llama,
onebitllms' online ``BitNetLinear``) fine-tuned with ``model.init_from`` and the λ warmup, and
the main revision (packed by a transcription of onebitllms' ``quantize_to_1bit``) imported;
both exported as ternary ``llama`` GGUFs and run on the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from published_replicas import MIXED_TEXT, falcon_e_packed, falcon_e_prequantized
from safetensors.torch import load_file
from test_published_hf1bitllm import hf_logits
from test_published_onebitllm import assert_same_predictions

from ternlab.bitlinear.quant import weight_quant
from ternlab.cli import main
from ternlab.export.gguf_export import export_gguf
from ternlab.export.source import load_checkpoint

#: max |engine - transformers| logit (measured 0.015).
LOGIT_TOL = 0.1


@pytest.fixture(scope="module")
def prequantized(tmp_path_factory) -> Path:
    return falcon_e_prequantized(tmp_path_factory.mktemp("fe") / "Falcon-E-prequantized")


@pytest.fixture(scope="module")
def packed(prequantized) -> Path:
    return falcon_e_packed(prequantized, prequantized.parent / "Falcon-E")


@pytest.mark.slow  # transformers' packed model on CPU: a few seconds
def test_packed_revision_runs_on_the_engine(packed, tmp_path):
    from transformers import AutoTokenizer

    from ternlab.inference import Engine

    assert main(["import", str(packed), "-o", str(tmp_path / "ckpt")]) == 0
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.config["model_type"] == "llama" and ckpt.tied
    theirs = load_file(packed / "model.safetensors")  # bfloat16 1/mean|W| divides: exact back
    for name, w in ckpt.state.items():
        if ckpt.is_ternary_weight(name):
            assert weight_quant(w).scale == 1.0 / theirs[name + "_scale"].float(), name
    res = export_gguf(tmp_path / "ckpt", tmp_path / "m.gguf", "i2_s")
    assert res.arch == "llama"
    ids = AutoTokenizer.from_pretrained(packed)(MIXED_TEXT)["input_ids"]
    eng = Engine(res.path, threads=2)
    assert eng.encode(MIXED_TEXT) == ids
    reference = hf_logits(packed, ids)
    assert_same_predictions(torch.from_numpy(eng.logits(ids)), reference, LOGIT_TOL)


@pytest.mark.slow  # a 6-step training run
def test_prequantized_finetune_with_warmup_export_and_run(prequantized, tmp_path):
    from transformers import AutoModelForCausalLM

    from ternlab.inference import Engine
    from ternlab.train import compose, train
    from ternlab.train.tracking import read_metrics

    out = tmp_path / "ft"
    res = train(
        compose(
            [
                f"model.init_from={prequantized}",
                f"data.tokenizer={prequantized}",
                "quant.warmup_steps=4",
                "tracking=disabled",
                "data.seq_len=32",
                "data.arith.num_examples=400",
                f"data.cache_dir={tmp_path / 'cache'}",
                "trainer.batch_size=4",
                "trainer.max_steps=6",
                "trainer.log_every=1",
                "trainer.eval_every=1000",
                "trainer.eval_batches=1",
                "trainer.progress=false",
                "trainer.plot=false",
                "optim.warmup_steps=2",
                f"trainer.output_dir={out}",
            ]
        )
    )
    lams = [r["quant_strength"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert lams == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    ckpt = load_checkpoint(res.checkpoint)
    assert ckpt.config["model_type"] == "llama" and ckpt.ternary
    gguf = export_gguf(res.checkpoint, tmp_path / "ft.gguf", "i2_s")
    assert gguf.arch == "llama"
    eng = Engine(gguf.path, threads=2)
    ids = eng.encode("Question: 12 + 30 = ? Answer: 42.")
    with torch._dynamo.config.patch(disable=True), torch.no_grad():
        hf = AutoModelForCausalLM.from_pretrained(res.checkpoint)  # online AutoBitLinear
        reference = hf(torch.tensor([ids])).logits[0]
    assert_same_predictions(torch.from_numpy(eng.logits(ids)), reference, LOGIT_TOL)
