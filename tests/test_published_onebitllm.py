"""1bitLLM/bitnet_b1_58-large (tiny replica): latent float16 weights, quantized online by
1bitLLM's own ``utils_quant.BitLinear`` -> ``ternlab import`` -> fine-tune (λ warmup) ->
``--type i2_s`` -> engine; the reference is 1bitLLM's forward (:mod:`onebitllm_port`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from onebitllm_port import onebitllm_logits
from published_replicas import MIXED_TEXT, onebitllm_latent
from safetensors.torch import load_file

from ternlab.bitlinear.quant import weight_quant
from ternlab.cli import main
from ternlab.export.gguf_export import export_gguf
from ternlab.export.gguf_import import import_gguf
from ternlab.export.source import load_checkpoint
from ternlab.train import compose, train
from ternlab.train.tracking import read_metrics

#: max |engine logit - 1bitLLM logit| (float32 reference; the engine's int8 x ternary dot
#: products are exact, the rest is summation order). Measured: see docs/export.md.
LOGIT_TOL = 0.25
#: top-2 margins below this are ties the test does not ask to break the same way.
TIE = 1e-3


@pytest.fixture(scope="module")
def replica(tmp_path_factory) -> Path:
    return onebitllm_latent(tmp_path_factory.mktemp("1bit") / "bitnet_b1_58-large")


@pytest.fixture(scope="module")
def ids(replica) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(replica)(MIXED_TEXT)["input_ids"]


@pytest.fixture(scope="module")
def imported(replica, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imp") / "ckpt"
    assert main(["import", str(replica), "-o", str(out)]) == 0
    return out


def test_import_keeps_the_latent_weights(replica, imported):
    theirs = load_file(replica / "model.safetensors")
    ours = load_checkpoint(imported)
    assert ours.config["model_type"] == "bitnet" and ours.ternary and ours.tied
    assert "weight_bits" not in ours.config
    n = 0
    for name, w in theirs.items():
        name = name.replace("inner_attn_ln", "attn_sub_norm")
        name = name.replace("ffn_layernorm", "ffn_sub_norm")
        assert torch.equal(ours.state[name], w.float()), name  # float16 -> float32 is exact
        n += ours.is_ternary_weight(name)
    assert n == 14 and len(ours.state) == len(theirs)


def test_engine_logits_match_1bitllm(replica, imported, ids, tmp_path):
    from ternlab.inference import Engine

    res = export_gguf(imported, tmp_path / "m.gguf", "i2_s")
    assert res.arch == "bitnet"  # SiLU + sub-norms + tied: llama.cpp's / bitnet.cpp's graph
    eng = Engine(res.path, threads=2)
    assert eng.encode(MIXED_TEXT) == ids and len(ids) > 100
    ours = torch.from_numpy(eng.logits(ids))
    reference = onebitllm_logits(replica, ids)
    assert_same_predictions(ours, reference)


def assert_same_predictions(
    ours: torch.Tensor, reference: torch.Tensor, tol: float = LOGIT_TOL
) -> None:
    """|Δlogit| <= ``tol`` and argmax equal at every position but exact ties: where the
    reference's top two are within TIE (random tiny models have a few), float summation
    order may pick either, so ours must be one of the two."""
    assert (ours - reference).abs().max().item() <= tol
    top2 = reference.topk(2, dim=-1)
    clear = (top2.values[:, 0] - top2.values[:, 1]) > TIE
    assert clear.float().mean() >= 0.97
    assert torch.equal(ours.argmax(-1)[clear], reference.argmax(-1)[clear])
    assert (top2.indices == ours.argmax(-1, keepdim=True)).any(-1).all()


def test_import_export_import_is_exact(imported, tmp_path):
    export_gguf(imported, tmp_path / "m.gguf", "i2_s")
    import_gguf(tmp_path / "m.gguf", tmp_path / "back")
    a, b = load_checkpoint(imported), load_checkpoint(tmp_path / "back")
    assert set(a.state) == set(b.state)
    for name, w in a.state.items():
        if a.is_ternary_weight(name):
            qa, qb = weight_quant(w), weight_quant(b.state[name])
            assert torch.equal(qa.codes, qb.codes) and qa.scale == qb.scale, name
        else:
            assert torch.equal(b.state[name].half().float(), b.state[name]), name
            assert torch.equal(b.state[name], w if "norm" in name else w.half().float()), name


@pytest.mark.parametrize(
    ("change", "words"),
    [({"weight_bits": 2}, "weight_bits=2"), ({"input_bits": 4}, "input_bits=4")],
)
def test_other_bit_widths_are_refused(replica, tmp_path, change, words, capsys):
    folder = tmp_path / "m"
    shutil.copytree(replica, folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, **change}))
    assert main(["import", str(folder), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and words in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a 6-step training run: ~10 s
def test_finetune_with_quant_warmup_then_export_and_run(imported, tmp_path):
    from transformers import AutoModelForCausalLM

    from ternlab.inference import Engine

    out = tmp_path / "ft"
    res = train(
        compose(
            [
                f"model.init_from={imported}",
                f"data.tokenizer={imported}",
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
    assert lams == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]  # ternlab's BitLinear took the λ schedule
    before, after = load_checkpoint(imported), load_checkpoint(res.checkpoint)
    name = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(before.state[name], after.state[name])  # it trained
    gguf = export_gguf(res.checkpoint, tmp_path / "ft.gguf", "i2_s").path
    eng = Engine(gguf, threads=2)
    ids = eng.encode("Question: 12 + 30 = ? Answer: 42.")
    with torch._dynamo.config.patch(disable=True), torch.no_grad():
        hf = AutoModelForCausalLM.from_pretrained(res.checkpoint)  # online AutoBitLinear
        reference = hf(torch.tensor([ids])).logits[0]
    assert_same_predictions(torch.from_numpy(eng.logits(ids)), reference)
