"""bitnet.cpp's own 2B4T GGUF (I2_S, arch ``bitnet-b1.58``, no ``tokenizer.ggml.pre``, no
``tokenizer.huggingface.json``), made by a port of its converter (:mod:`bitnet_cpp_port`)
from a tiny replica of microsoft/bitnet-b1.58-2B-4T-bf16: the engine tokenizes it as the
HF tokenizer does, ``ternlab import`` accepts it, and import -> export -> import is exact.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from bitnet_cpp_port import convert
from published_replicas import MIXED_TEXT, bitnet_2b4t_bf16
from safetensors.torch import load_file

from ternlab.bitlinear.quant import weight_quant
from ternlab.export.cli import add_export_commands
from ternlab.export.gguf_export import export_gguf
from ternlab.export.gguf_import import import_gguf
from ternlab.export.source import load_checkpoint
from ternlab.inference.tokenizer import K_PRE, TokenizerError, infer_pre, tokenizer_from_metadata

LLAMA3_NOTE = "no tokenizer.ggml.pre key; the vocabulary has Llama 3's special tokens"


@pytest.fixture(scope="module")
def master(tmp_path_factory) -> Path:
    return bitnet_2b4t_bf16(tmp_path_factory.mktemp("bf16") / "bitnet-b1.58-2B-4T-bf16")


@pytest.fixture(scope="module")
def gguf_file(master) -> Path:
    return convert(master, master.parent / "ggml-model-i2_s.gguf")


@pytest.fixture(scope="module")
def hf_ids(master) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(master)(MIXED_TEXT)["input_ids"]


def _engine(path):
    from ternlab.inference import Engine

    with pytest.warns(UserWarning, match=LLAMA3_NOTE):  # said, never silent
        return Engine(path, threads=2)


def test_engine_tokenizes_as_the_hf_tokenizer(gguf_file, hf_ids):
    eng = _engine(gguf_file)
    assert K_PRE not in eng.metadata and "tokenizer.huggingface.json" not in eng.metadata
    assert "llama-bpe" in eng.tokenizer.note and str(gguf_file) in eng.tokenizer.note
    assert eng.encode(MIXED_TEXT) == hf_ids  # BOS (add_bos_token) + the text
    assert eng.decode(hf_ids) == MIXED_TEXT


def test_gpt2_split_would_differ(gguf_file, hf_ids):
    """The old silent fallback: GPT-2's split gives other ids on this text."""
    eng = _engine(gguf_file)
    meta = {**eng.metadata, K_PRE: "gpt-2"}
    assert tokenizer_from_metadata(meta, "x.gguf").encode(MIXED_TEXT) != hf_ids


def test_unknown_vocabulary_without_pre_is_refused():
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a", "b", "ab", "<|x|>"],
            "tokenizer.ggml.merges": ["a b"]}  # fmt: skip
    with pytest.raises(TokenizerError, match=r"odd\.gguf: no tokenizer\.ggml\.pre key.*llama-bpe"):
        tokenizer_from_metadata(meta, "odd.gguf")
    assert infer_pre(["<|endoftext|>", "a"], "g.gguf")[0] == "gpt-2"


@pytest.fixture(scope="module")
def imported(gguf_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imp") / "ckpt"
    got = import_gguf(gguf_file, out)
    assert len(got.notes) == 1 and LLAMA3_NOTE in got.notes[0]
    assert got.scale_changes == []
    return out


def test_import_gives_the_published_codes_scales_and_tokenizer(master, imported, hf_ids):
    from transformers import AutoTokenizer

    ckpt = load_checkpoint(imported)
    assert ckpt.config["hidden_act"] == "relu2" and ckpt.tied
    latent = load_file(master / "model.safetensors")
    n = 0
    for name, w in latent.items():
        if ckpt.is_ternary_weight(name):
            w = w.float()  # bitnet.cpp's preprocess: s = 1 / mean|w|, codes round(w * s)
            s = 1.0 / w.abs().mean().clamp(min=1e-5)
            q = weight_quant(ckpt.state[name])
            assert torch.equal(q.codes.float(), (w * s).round().clamp(-1, 1)), name
            assert q.scale == (1.0 / s), name  # I2_S's max |w|: exactly the float32 1/s
            n += 1
        elif name != "model.embed_tokens.weight":  # F16 in the file
            assert torch.equal(ckpt.state[name], w.float()), name
    assert n == 14
    assert AutoTokenizer.from_pretrained(imported)(MIXED_TEXT)["input_ids"] == hf_ids


def test_import_export_import_is_exact_and_runs_the_same(gguf_file, imported, hf_ids, tmp_path):
    res = export_gguf(imported, tmp_path / "ours.gguf", "i2_s")
    assert res.arch == "bitnet-b1.58"
    import_gguf(res.path, tmp_path / "back")
    a, b = load_checkpoint(imported), load_checkpoint(tmp_path / "back")
    for name, w in a.state.items():
        if a.is_ternary_weight(name):
            qa, qb = weight_quant(w), weight_quant(b.state[name])
            assert torch.equal(qa.codes, qb.codes) and qa.scale == qb.scale, name
        else:
            assert torch.equal(b.state[name], w), name
    theirs = _engine(gguf_file).logits(hf_ids)
    from ternlab.inference import Engine

    ours = Engine(res.path, threads=2).logits(hf_ids)
    assert np.array_equal(ours, theirs)  # same codes, scales and F16 embedding


def test_cli_import_prints_the_inference(gguf_file, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="ternlab")
    add_export_commands(parser.add_subparsers())
    args = parser.parse_args(["import", str(gguf_file), "-o", str(tmp_path / "c"), "-q"])
    assert args.func(args) == 0
    assert LLAMA3_NOTE in capsys.readouterr().out
