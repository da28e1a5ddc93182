"""hf-packed export loads in transformers and imports back exactly; the CLI wraps it all."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from export_helpers import quick_checkpoint
from safetensors.torch import load_file, save_file

from ternlab.bitlinear.quant import weight_quant
from ternlab.export.cli import add_export_commands
from ternlab.export.errors import ExportError
from ternlab.export.hf_packed import export_hf_packed, import_hf_packed
from ternlab.export.source import load_checkpoint
from ternlab.export.torch_model import load_torch_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return quick_checkpoint(tmp_path_factory.mktemp("hf"))


@pytest.mark.parametrize("linear_class", ["autobitlinear", "bitlinear"])
def test_transformers_loads_packed(ckpt, tmp_path, linear_class):
    from transformers import AutoModelForCausalLM
    from transformers.integrations.bitnet import AutoBitLinear, BitLinear

    out = export_hf_packed(ckpt, tmp_path / "packed", linear_class=linear_class)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization_config"]["quantization_mode"] == "offline"
    assert cfg["quantization_config"]["linear_class"] == linear_class
    state = load_file(out / "model.safetensors")
    assert state["model.layers.0.mlp.down_proj.weight"].dtype == torch.uint8
    with torch._dynamo.config.patch(disable=True):  # unpack_weights is torch.compile'd
        hf = AutoModelForCausalLM.from_pretrained(out)
    layer = hf.model.layers[0].mlp.down_proj
    assert type(layer) is {"autobitlinear": AutoBitLinear, "bitlinear": BitLinear}[linear_class]
    assert type(hf.lm_head) is torch.nn.Linear
    ids = torch.tensor([[3, 17, 42, 99, 5, 7]])
    with torch.no_grad(), torch._dynamo.config.patch(disable=True):
        ours, theirs = load_torch_model(ckpt)(ids).logits, hf(ids).logits
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-4)  # sum order only


def test_import_back_is_exact(ckpt, tmp_path):
    export_hf_packed(ckpt, tmp_path / "packed")
    import_hf_packed(tmp_path / "packed", tmp_path / "back")
    src, back = load_checkpoint(ckpt), load_checkpoint(tmp_path / "back")
    n = 0
    for name, w in src.state.items():
        if src.is_ternary_weight(name):
            a, b = weight_quant(w), weight_quant(back.state[name])
            assert torch.equal(a.codes, b.codes) and a.scale == b.scale, name
            n += 1
        else:
            assert torch.equal(back.state[name], w), name
    assert n == 14 and back.ternary


def test_not_ternary_packing_is_refused(ckpt, tmp_path):
    out = export_hf_packed(ckpt, tmp_path / "packed")
    state = load_file(out / "model.safetensors")
    state["model.layers.0.mlp.up_proj.weight"][0, 0] = 0xFF
    save_file(state, out / "model.safetensors")
    with pytest.raises(ExportError, match="up_proj.*not a ternary"):
        import_hf_packed(out, tmp_path / "back")
    assert not (tmp_path / "back").exists()


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ternlab")
    add_export_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli(ckpt, tmp_path, capsys):
    assert _cli("export", str(ckpt), "--format", "hf-packed", "-o", str(tmp_path / "p")) == 0
    assert _cli("import", str(tmp_path / "p"), "-o", str(tmp_path / "c")) == 0
    assert (tmp_path / "c" / "model.safetensors").is_file()
    # the tiny preset's 64- and 128-wide rows cannot be TQ2_0: a one-line error, exit 2
    assert _cli("export", str(ckpt), "--type", "tq2_0", "-o", str(tmp_path / "m.gguf")) == 2
    assert "blocks of 256" in capsys.readouterr().err
    assert not (tmp_path / "m.gguf").exists()
