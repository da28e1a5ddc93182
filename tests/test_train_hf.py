"""Checkpoints load in plain `transformers` with identical logits; QAT from a Llama model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from ternlab.bitlinear import BitLinear
from ternlab.train import compose, train
from ternlab.train.checkpoint import load_weights, read_trainer_state
from ternlab.train.config import ModelConfig, QuantConfig, to_dataclass
from ternlab.train.data import build_tokenizer
from ternlab.train.model import build_model
from ternlab.train.tracking import read_metrics


def _run(out: Path, cache: Path, *extra: str):
    return train(
        compose(
            [
                "model=tiny",
                "tracking=disabled",
                "data.seq_len=32",
                "data.arith.num_examples=1500",
                "trainer.batch_size=8",
                "trainer.progress=false",
                "trainer.plot=false",
                "trainer.max_steps=6",
                "trainer.eval_every=1000",
                "trainer.eval_batches=1",
                "optim.warmup_steps=2",
                f"data.cache_dir={cache}",
                f"trainer.output_dir={out}",
                *extra,
            ]
        )
    )


def _ternlab_model(ckpt: Path):
    """Rebuild the training model (BitLinear layers) from the checkpoint's own config."""
    saved = read_trainer_state(ckpt)["config"]
    model = build_model(
        ModelConfig(**saved["model"]),
        QuantConfig(**saved["quant"]),
        AutoTokenizer.from_pretrained(ckpt),
    )
    load_weights(model, ckpt)
    return model.eval()


def _hf_logits(ckpt: Path, ids: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    # transformers wraps its BitNet quantizers in @torch.compile; eager mode runs the very
    # same Python code without a C++ toolchain or a 30 s compile on CPU.
    with torch._dynamo.config.patch(disable=True), torch.no_grad():
        hf = AutoModelForCausalLM.from_pretrained(ckpt)
        return hf, hf(ids).logits


@pytest.mark.parametrize("quant", ["ternary", "none"])
def test_checkpoint_reloads_in_transformers_with_identical_logits(tmp_path, quant):
    res = _run(tmp_path / "run", tmp_path / "cache", f"quant={quant}")
    tok = AutoTokenizer.from_pretrained(res.checkpoint)
    ids = tok(["Question: Ada has 3 apples. Ada gets 4 more."], return_tensors="pt").input_ids
    ours = _ternlab_model(res.checkpoint)
    with torch.no_grad():
        expected = ours(ids).logits
    hf, got = _hf_logits(res.checkpoint, ids)
    q_proj = hf.model.layers[0].self_attn.q_proj
    if quant == "ternary":
        assert type(q_proj).__name__ == "AutoBitLinear" and q_proj.online_quant
        assert isinstance(ours.model.layers[0].self_attn.q_proj, BitLinear)
    else:
        assert type(q_proj) is nn.Linear
    assert type(hf.lm_head) is nn.Linear  # the head stays full precision
    assert torch.equal(got, expected)


def test_finetune_llama_from_disk_with_quant_warmup(tmp_path):
    cache = tmp_path / "cache"
    tok = build_tokenizer(
        to_dataclass(compose([f"data.cache_dir={cache}", "data.arith.num_examples=1500"])).data
    )
    src = tmp_path / "llama"
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
    ).save_pretrained(src)
    tok.save_pretrained(src)
    out = tmp_path / "qat"
    res = _run(
        out,
        cache,
        f"model.init_from={src}",
        f"data.tokenizer={src}",
        "quant.warmup_steps=4",
        "trainer.log_every=1",
    )
    lams = [r["quant_strength"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert lams == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    cfg = json.loads((res.checkpoint / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["quantization_config"]["quant_method"] == "bitnet"
    ids = torch.tensor([[tok.bos_token_id, 5, 6, 7]])
    with torch.no_grad():
        expected = _ternlab_model(res.checkpoint)(ids).logits
    assert torch.equal(_hf_logits(res.checkpoint, ids)[1], expected)
