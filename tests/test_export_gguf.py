"""GGUF export -> verify -> import on tiny models: exact codes and scales, metadata, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from export_helpers import quick_checkpoint

from ternlab.bitlinear.quant import weight_quant
from ternlab.export.codec import fp16_scale
from ternlab.export.errors import ExportError
from ternlab.export.gguf_export import export_gguf
from ternlab.export.gguf_import import import_gguf
from ternlab.export.i2s import I2S_TYPE_ID, TernaryGGUFReader
from ternlab.export.source import load_checkpoint


def _train(root: Path, *extra: str, inter: int = 512) -> Path:
    # Rows of 256 values: the smallest shape every GGUF ternary type accepts.
    return quick_checkpoint(
        root, "model.hidden_size=256", f"model.intermediate_size={inter}", *extra
    )


@pytest.fixture(scope="module")
def silu(tmp_path_factory) -> Path:
    """Ternary, SiLU, tied embeddings: llama.cpp's ``bitnet``."""
    root = tmp_path_factory.mktemp("silu")
    return _train(root, "model.hidden_act=silu", "model.tie_word_embeddings=true")


@pytest.fixture(scope="module")
def relu2(tmp_path_factory) -> Path:
    """Ternary, ReLU², untied head: bitnet.cpp's ``bitnet-b1.58``."""
    return _train(tmp_path_factory.mktemp("relu2"))


@pytest.fixture(scope="module")
def fp(tmp_path_factory) -> Path:
    """The full-precision baseline (quant=none), SiLU, tied."""
    root = tmp_path_factory.mktemp("fp")
    return _train(root, "quant=none", "model.hidden_act=silu", "model.tie_word_embeddings=true")


def _ternary(ckpt: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    c = load_checkpoint(ckpt)
    return {n: weight_quant(w) for n, w in c.state.items() if c.is_ternary_weight(n)}


def _assert_same_model(src: Path, back: Path, moved: list[str]) -> None:
    """Codes and float32 scales identical (TQ files record the exact scale beside the fp16 one)."""
    a, b = _ternary(src), _ternary(back)
    assert a.keys() == b.keys() and a
    for name, qa in a.items():
        assert torch.equal(qa.codes, b[name].codes), name
        assert b[name].scale == qa.scale, name
    assert moved == []


def _assert_fp16_scales(src: Path, back: Path, moved: list[str]) -> None:
    """Without the recorded scales a TQ import gets each block's fp16 scale, or the nearest
    float32 mean to it (one ulp off, reported in ``moved``)."""
    a, b = _ternary(src), _ternary(back)
    moved_names = {m.split(":")[0] for m in moved}
    for name, qa in a.items():
        qb = b[name]
        assert torch.equal(qa.codes, qb.codes), name
        want = torch.tensor(fp16_scale(float(qa.scale)))
        if qb.scale != want:
            assert torch.nextafter(want, qb.scale) == qb.scale, name
            assert any(m.startswith("blk.") for m in moved_names), moved


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("qtype", ["tq2_0", "tq1_0", "i2_s"])
def test_ternary_roundtrip_silu(silu, tmp_path, qtype):
    out = tmp_path / f"m-{qtype}.gguf"
    res = export_gguf(silu, out, qtype)
    assert res.arch == "bitnet" and out.stat().st_size == res.nbytes
    reader = TernaryGGUFReader(out) if qtype == "i2_s" else gguf.GGUFReader(out)
    types = {int(t.tensor_type) for t in reader.tensors}
    want = {"i2_s": I2S_TYPE_ID, "tq1_0": 34, "tq2_0": 35}[qtype]
    assert want in types and int(gguf.GGMLQuantizationType.F16) in types
    imported = import_gguf(out, tmp_path / "back")
    _assert_same_model(silu, tmp_path / "back", imported.scale_changes)
    assert (tmp_path / "back" / "tokenizer.json").read_text() == (
        silu / "tokenizer.json"
    ).read_text()
    assert _listing(tmp_path) == sorted([out.name, "back"])  # no temporaries left


@pytest.mark.parametrize("qtype", ["tq2_0", "tq1_0"])
def test_tq_import_without_recorded_scales_uses_the_blocks(silu, tmp_path, qtype, monkeypatch):
    import ternlab.export.gguf_import as gi

    out = tmp_path / "m.gguf"
    export_gguf(silu, out, qtype)
    monkeypatch.setattr(gi, "_exact_scales", lambda reader: {})  # as in a foreign file
    imported = import_gguf(out, tmp_path / "back")
    _assert_fp16_scales(silu, tmp_path / "back", imported.scale_changes)


def test_recorded_scale_must_match_the_blocks():
    from ternlab.export.gguf_import import _checkpoint_scale

    exact = {"blk.0.attn_q.weight": 0.123456789}
    d = np.float32(np.float16(0.123456789))
    assert _checkpoint_scale("blk.0.attn_q.weight", d, exact) == np.float32(0.123456789)
    assert _checkpoint_scale("blk.0.attn_k.weight", d, exact) == d
    with pytest.raises(ExportError, match="edited after export"):
        _checkpoint_scale("blk.0.attn_q.weight", np.float32(0.5), exact)


def test_i2s_is_unknown_to_plain_gguf_reader(silu, tmp_path):
    """Why TernaryGGUFReader exists: gguf-py 0.19 has no type 36."""
    out = tmp_path / "m.gguf"
    export_gguf(silu, out, "i2_s")
    with pytest.raises(ValueError):
        gguf.GGUFReader(out)


def test_relu2_untied_exports_bitnet_b158(relu2, tmp_path):
    out = tmp_path / "m.gguf"
    assert export_gguf(relu2, out, "i2_s").arch == "bitnet-b1.58"
    names = {t.name for t in TernaryGGUFReader(out).tensors}
    assert "output.weight" in names and "blk.1.ffn_sub_norm.weight" in names
    imported = import_gguf(out, tmp_path / "back")
    _assert_same_model(relu2, tmp_path / "back", imported.scale_changes)


def test_metadata_roundtrips(silu, tmp_path):
    out = tmp_path / "m.gguf"
    export_gguf(silu, out, "tq2_0", embed_type="q8_0")
    r = gguf.GGUFReader(out)
    cfg = json.loads((silu / "config.json").read_text())

    def val(key):
        return r.fields[key].contents()

    assert val("general.architecture") == "bitnet"
    assert val("bitnet.block_count") == cfg["num_hidden_layers"]
    assert val("bitnet.attention.head_count_kv") == cfg["num_key_value_heads"]
    assert val("general.file_type") == int(gguf.LlamaFileType.MOSTLY_TQ2_0)
    assert val("tokenizer.ggml.model") == "gpt2" and val("tokenizer.ggml.pre") == "gpt-2"
    assert len(val("tokenizer.ggml.tokens")) == cfg["vocab_size"]
    assert val("tokenizer.ggml.eos_token_id") == cfg["eos_token_id"]
    assert val("ternlab.quant_spec_version") == "1.0"
    emb = next(t for t in r.tensors if t.name == "token_embd.weight")
    assert emb.tensor_type == gguf.GGMLQuantizationType.Q8_0


@pytest.mark.parametrize("qtype", ["f16", "q8_0"])
def test_fp_baseline(fp, tmp_path, qtype):
    out = tmp_path / "m.gguf"
    assert export_gguf(fp, out, qtype).arch == "bitnet"
    import_gguf(out, tmp_path / "back")
    src, back = load_checkpoint(fp), load_checkpoint(tmp_path / "back")
    assert "quantization_config" not in back.config
    w = src.state["model.layers.0.mlp.up_proj.weight"]
    got = back.state["model.layers.0.mlp.up_proj.weight"]
    assert torch.allclose(got, w, atol=float(w.abs().max()) / 100)


# --- errors: clear messages, nothing written ---------------------------------------------


def _expect_error(tmp_path: Path, match: str, fn, *args) -> None:
    before = _listing(tmp_path)
    with pytest.raises(ExportError, match=match):
        fn(*args)
    assert _listing(tmp_path) == before


def test_truncated_file(silu, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    export_gguf(silu, src / "m.gguf", "tq2_0")
    data = (src / "m.gguf").read_bytes()
    (src / "cut.gguf").write_bytes(data[: len(data) - 1000])
    _expect_error(tmp_path, "truncated", import_gguf, src / "cut.gguf", tmp_path / "back")


def test_not_ternary_i2s_field(silu, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    export_gguf(silu, src / "m.gguf", "i2_s")
    t = next(
        t for t in TernaryGGUFReader(src / "m.gguf").tensors if t.name == "blk.0.attn_q.weight"
    )
    data = bytearray((src / "m.gguf").read_bytes())
    data[t.data_offset] = 0xFF  # field 0b11: not -1/0/+1
    (src / "bad.gguf").write_bytes(bytes(data))
    _expect_error(tmp_path, "0b11", import_gguf, src / "bad.gguf", tmp_path / "back")


def test_tq_blocks_with_different_scales_are_not_a_ternlab_tensor(tmp_path):
    from ternlab.export.codec import decode_ternary

    w = gguf.GGUFWriter(tmp_path / "x.gguf", "bitnet")
    vals = np.ones((1, 512), dtype=np.float32)
    vals[0, 256:] = 2.0
    w.add_tensor("t", gguf.quants.quantize(vals, gguf.GGMLQuantizationType.TQ2_0), raw_dtype=35)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ExportError, match="different scales"):
        decode_ternary(gguf.GGUFReader(tmp_path / "x.gguf").tensors[0])


def test_verify_catches_corruption(silu, tmp_path, monkeypatch):
    import ternlab.export.codec as codec

    real = codec.add_ternary

    def flip(w, name, codes, scale, qtype):
        codes = codes.copy()
        codes[0, 0] = -codes[0, 0] if codes[0, 0] else 1
        real(w, name, codes, scale, qtype)

    monkeypatch.setattr(codec, "add_ternary", flip)
    _expect_error(tmp_path, "codes differ", export_gguf, silu, tmp_path / "m.gguf", "tq2_0")


def test_missing_tokenizer(silu, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(silu, ck)
    (ck / "tokenizer.json").unlink()
    _expect_error(tmp_path, "tokenizer.json", export_gguf, ck, tmp_path / "m.gguf", "tq2_0")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"model_type": "llama"}, "model_type"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"tie_word_embeddings": False}, "tie_word_embeddings"),
    ],
)
def test_unsupported_architecture(silu, tmp_path, change, match):
    ck = tmp_path / "ck"
    shutil.copytree(silu, ck)
    cfg = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**cfg, **change}))
    _expect_error(tmp_path, match, export_gguf, ck, tmp_path / "m.gguf", "tq2_0")


def test_rows_not_multiple_of_block(tmp_path_factory, tmp_path):
    root = tmp_path_factory.mktemp("ff384")
    ck = _train(root, "model.tie_word_embeddings=true", "model.hidden_act=silu", inter=384)
    _expect_error(tmp_path, "ffn_down.*256", export_gguf, ck, tmp_path / "m.gguf", "tq2_0")
    export_gguf(ck, tmp_path / "m.gguf", "i2_s")  # 384 is a multiple of I2_S's 128


def test_wrong_type_for_checkpoint(silu, fp, tmp_path):
    _expect_error(tmp_path, "full-precision baseline", export_gguf, silu, tmp_path / "a", "f16")
    _expect_error(tmp_path, "no ternary weights", export_gguf, fp, tmp_path / "b", "tq2_0")


@pytest.mark.parametrize(
    "qtype,embed_type", [("tq2_0", "f16"), ("tq1_0", "f16"), ("i2_s", "f16"), ("tq1_0", "q4_0")]
)
def test_size_model_matches_the_file(silu, tmp_path, qtype, embed_type):
    """benchmarks/export_sizes.py's arithmetic equals the tensor data of a real export."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "export_sizes.py"
    spec = importlib.util.spec_from_file_location("export_sizes", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "m.gguf"
    export_gguf(silu, out, qtype, embed_type=embed_type)
    reader = TernaryGGUFReader(out)
    data = sum(-(-t.data.nbytes // 32) * 32 for t in reader.tensors)
    cfg = json.loads((silu / "config.json").read_text())
    assert mod.sizes(cfg, qtype, embed_type)[0] == data
