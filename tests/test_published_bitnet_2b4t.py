"""microsoft/bitnet-b1.58-2B-4T's packed folder (tiny replica): import, export, run, round trip.

The replica is built by :mod:`published_replicas` with transformers' own ``pack_weights`` and
2B4T's ``quantization_config`` (``autobitlinear``: ``weight_scale`` multiplies). The reference
is transformers' own ``BitNetForCausalLM`` with its ``AutoBitLinear`` layers on the same files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from published_replicas import MIXED_TEXT, bitnet_2b4t_packed
from safetensors.torch import load_file

from ternlab.bitlinear.quant import weight_quant
from ternlab.export.errors import ExportError
from ternlab.export.gguf_export import export_gguf
from ternlab.export.hf_packed import export_hf_packed, import_hf_packed
from ternlab.export.source import load_checkpoint

#: max |engine logit - transformers logit|; both quantize activations per token to int8, the
#: difference is summation order and float32 vs int32 accumulation (measured: 0.083).
LOGIT_TOL = 0.25


def hf_logits(folder: Path, ids: list[int]) -> torch.Tensor:
    """transformers' own forward of a packed folder, in float32."""
    from transformers import AutoModelForCausalLM

    with torch._dynamo.config.patch(disable=True):  # its unpack is torch.compile'd: slow on CPU
        model = AutoModelForCausalLM.from_pretrained(folder)
        torch.nn.Module.to(model, torch.float32)  # transformers refuses .float() on quantized
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0]


@pytest.fixture(scope="module")
def replica(tmp_path_factory) -> Path:
    return bitnet_2b4t_packed(tmp_path_factory.mktemp("2b4t") / "bitnet-b1.58-2B-4T")


@pytest.fixture(scope="module")
def ids(replica) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(replica)(MIXED_TEXT)["input_ids"]


@pytest.fixture(scope="module")
def reference(replica, ids) -> torch.Tensor:
    return hf_logits(replica, ids)


@pytest.fixture(scope="module")
def imported(replica, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imp") / "ckpt"
    assert import_hf_packed(replica, out).scale_changes == []
    return out


@pytest.mark.slow  # transformers' packed model on CPU: a few seconds
def test_engine_logits_match_transformers(imported, ids, reference, tmp_path):
    from ternlab.inference import Engine

    res = export_gguf(imported, tmp_path / "m.gguf", "i2_s")
    assert res.arch == "bitnet-b1.58"
    eng = Engine(res.path, threads=2)
    assert eng.encode(MIXED_TEXT) == ids  # the copied tokenizer, BOS included
    ours = torch.from_numpy(eng.logits(ids))
    assert len(ids) > 100
    assert torch.equal(ours.argmax(-1), reference.argmax(-1))
    assert (ours - reference).abs().max().item() <= LOGIT_TOL


def test_export_writes_what_2b4t_publishes(replica, imported, tmp_path):
    out = export_hf_packed(imported, tmp_path / "packed")
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc == json.loads((replica / "config.json").read_text())["quantization_config"]
    theirs, ours = load_file(replica / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(ours) == set(theirs)
    for name, t in theirs.items():
        if t.dtype == torch.uint8:  # packed codes: the same bytes
            assert torch.equal(ours[name], t), name
        else:  # bfloat16 as published; we store float32, the same values
            assert torch.equal(ours[name], t.float()), name


def test_import_export_import_is_exact(imported, tmp_path):
    export_hf_packed(imported, tmp_path / "packed")
    import_hf_packed(tmp_path / "packed", tmp_path / "back")
    a, b = load_checkpoint(imported), load_checkpoint(tmp_path / "back")
    assert set(a.state) == set(b.state)
    n = 0
    for name, w in a.state.items():
        if a.is_ternary_weight(name):
            qa, qb = weight_quant(w), weight_quant(b.state[name])
            assert torch.equal(qa.codes, qb.codes) and qa.scale == qb.scale, name
            n += 1
        else:
            assert torch.equal(b.state[name], w), name
    assert n == 14


@pytest.mark.slow
@pytest.mark.parametrize("linear_class", ["autobitlinear", "bitlinear"])
def test_transformers_runs_our_export(imported, ids, reference, tmp_path, linear_class):
    out = export_hf_packed(imported, tmp_path / "p", linear_class=linear_class)
    assert json.loads((out / "config.json").read_text())["quantization_config"] == {
        "quant_method": "bitnet",
        "linear_class": linear_class,
        "quantization_mode": "offline",
    }
    torch.testing.assert_close(hf_logits(out, ids[:24]), reference[:24], rtol=0, atol=1e-4)
    import_hf_packed(out, tmp_path / "back")  # and the other convention reads back exactly
    a, b = load_checkpoint(imported), load_checkpoint(tmp_path / "back")
    for name in a.state:
        if a.is_ternary_weight(name):
            qa, qb = weight_quant(a.state[name]), weight_quant(b.state[name])
            assert torch.equal(qa.codes, qb.codes) and qa.scale == qb.scale, name


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"linear_class": "fancylinear"}, "quantization_config.linear_class='fancylinear'"),
        ({"quantization_mode": "online"}, "quantization_config.quantization_mode='online'"),
        ({"use_rms_norm": True}, "quantization_config.use_rms_norm"),
        ({"quant_method": "bitsandbytes"}, "quantization_config.quant_method='bitsandbytes'"),
    ],
)
def test_other_settings_are_refused_naming_the_key(replica, tmp_path, change, key):
    folder = tmp_path / "m"
    shutil.copytree(replica, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["quantization_config"].update(change)
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="config.json") as e:
        import_hf_packed(folder, tmp_path / "out")
    assert key in str(e.value)
    assert not (tmp_path / "out").exists()


def test_unpacked_projection_is_refused(replica, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "m"
    shutil.copytree(replica, folder)
    state = load_file(folder / "model.safetensors")
    del state["model.layers.1.self_attn.q_proj.weight_scale"]
    state["model.layers.1.self_attn.q_proj.weight"] = torch.zeros(128, 128, dtype=torch.bfloat16)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ExportError, match="q_proj.weight is not packed.*modules_to_not_convert"):
        import_hf_packed(folder, tmp_path / "out")
