"""HF1BitLLM/Llama3-8B-1.58-100B-tokens (tiny replica): a packed Llama without sub-norms,
transformers' ``BitLinear`` convention (``weight_scale`` divides) -> ``ternlab import`` ->
``--type i2_s`` as a ternary ``llama`` GGUF -> engine, against transformers' own forward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from published_replicas import MIXED_TEXT, hf1bitllm_packed
from test_published_onebitllm import assert_same_predictions

from ternlab.bitlinear.quant import weight_quant
from ternlab.cli import main
from ternlab.export.gguf_export import export_gguf
from ternlab.export.hf_packed import export_hf_packed, import_hf_packed
from ternlab.export.source import load_checkpoint

#: max |engine - transformers| logit; both quantize activations per token to int8 (measured
#: 0.016: transformers' BitLinear here computes in float32 like the engine).
LOGIT_TOL = 0.1


def hf_logits(folder: Path, ids: list[int]) -> torch.Tensor:
    """transformers' own forward of a packed folder (its ``BitLinear``), float32."""
    from transformers import AutoModelForCausalLM

    with torch._dynamo.config.patch(disable=True), torch.no_grad():
        model = AutoModelForCausalLM.from_pretrained(folder)
        assert type(model.model.layers[0].mlp.up_proj).__name__ == "BitLinear"
        torch.nn.Module.to(model, torch.float32)
        return model(torch.tensor([ids])).logits[0]


@pytest.fixture(scope="module")
def replica(tmp_path_factory) -> Path:
    return hf1bitllm_packed(tmp_path_factory.mktemp("hf1") / "Llama3-8B-1.58-100B-tokens")


@pytest.fixture(scope="module")
def ids(replica) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(replica)(MIXED_TEXT)["input_ids"]


@pytest.fixture(scope="module")
def imported(replica, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imp") / "ckpt"
    assert main(["import", str(replica), "-o", str(out)]) == 0
    return out


def test_import_keeps_the_llama_graph(imported):
    ckpt = load_checkpoint(imported)
    assert ckpt.config["model_type"] == "llama" and ckpt.ternary and not ckpt.tied
    assert ckpt.config["architectures"] == ["LlamaForCausalLM"]
    assert not [n for n in ckpt.state if "sub_norm" in n]


@pytest.mark.slow  # transformers' packed model on CPU: a few seconds
def test_engine_logits_match_transformers(replica, imported, ids, tmp_path):
    from ternlab.inference import Engine

    res = export_gguf(imported, tmp_path / "m.gguf", "i2_s")
    assert res.arch == "llama"  # no sub-norms: q/k rows permuted for interleaved RoPE
    eng = Engine(res.path, threads=2)
    assert eng.encode(MIXED_TEXT) == ids and len(ids) > 100
    assert_same_predictions(torch.from_numpy(eng.logits(ids)), hf_logits(replica, ids), LOGIT_TOL)


def test_import_export_import_is_exact(replica, imported, tmp_path):
    out = export_hf_packed(imported, tmp_path / "packed", linear_class="bitlinear")
    cfg = json.loads((out / "config.json").read_text())
    assert (
        cfg["model_type"] == "llama" and cfg["quantization_config"]["linear_class"] == "bitlinear"
    )
    import_hf_packed(out, tmp_path / "back")
    a, b = load_checkpoint(imported), load_checkpoint(tmp_path / "back")
    assert set(a.state) == set(b.state) and b.config["model_type"] == "llama"
    n = 0
    for name, w in a.state.items():
        if a.is_ternary_weight(name):
            qa, qb = weight_quant(w), weight_quant(b.state[name])
            assert torch.equal(qa.codes, qb.codes) and qa.scale == qb.scale, name
            n += 1
        else:
            assert torch.equal(b.state[name], w), name
    assert n == 14


def test_llama_with_sub_norms_or_scaled_rope_is_refused(imported, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from ternlab.export.errors import ExportError

    folder = tmp_path / "c"
    shutil.copytree(imported, folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**cfg, "rope_scaling": {"rope_type": "llama3"}})
    )
    with pytest.raises(ExportError, match="config.json: RoPE scaling 'llama3'"):
        export_gguf(folder, tmp_path / "x.gguf", "i2_s")
    (folder / "config.json").write_text(json.dumps(cfg))
    state = load_file(folder / "model.safetensors")
    state["model.layers.0.mlp.ffn_sub_norm.weight"] = torch.ones(256)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ExportError, match="model_type 'llama' but the weights have BitNet sub"):
        export_gguf(folder, tmp_path / "x.gguf", "i2_s")
    assert not (tmp_path / "x.gguf").exists()
