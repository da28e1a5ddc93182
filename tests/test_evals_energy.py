"""The arithmetic energy model (BitNet papers' numbers) and the RAPL reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ternlab.evals import energy, rapl
from ternlab.evals.energy import ENERGY_PJ, ModelShape, OpCounts, arithmetic_energy_j, op_counts

SHAPE = ModelShape(hidden=256, intermediate=512, layers=4, heads=4, kv_heads=2, vocab=512)


def test_table_reproduces_the_papers_71x():
    """BitNet b1.58: 71.4x less arithmetic energy for matmul at 7 nm (FP16 MAC vs INT8 add)."""
    e = ENERGY_PJ["7nm"]
    assert (e["fp16_add"] + e["fp16_mul"]) / e["int8_add"] == pytest.approx(71.4, abs=0.05)
    # The 45 nm column is Horowitz (ISSCC 2014).
    assert ENERGY_PJ["45nm"] == {"fp32_add": 0.9, "fp32_mul": 3.7, "fp16_add": 0.4,
                                 "fp16_mul": 1.1, "int8_add": 0.03, "int8_mul": 0.2}  # fmt: skip


def test_op_counts_by_hand():
    d, f, dkv, L, V = 256, 512, 128, 4, 512
    linear = L * (2 * d * d + 2 * d * dkv + 3 * d * f)
    assert SHAPE.linear_weights == linear
    assert SHAPE.linear_outputs == L * (3 * d + 2 * dkv + 2 * f)
    fp = op_counts(SHAPE, ternary=False, context=10)
    attn = 2 * 10 * d * L
    assert fp == OpCounts(0, linear + d * V + attn, linear + d * V + attn)
    tern = op_counts(SHAPE, ternary=True, context=10)
    assert tern.int8_add == linear
    assert tern.fp16_add == d * V + attn
    assert tern.fp16_mul == d * V + attn + SHAPE.linear_outputs


def test_energy_in_joules():
    c = OpCounts(int8_add=10**6, fp16_add=10**6, fp16_mul=10**6)
    assert arithmetic_energy_j(c, "7nm") == pytest.approx((0.007 + 0.16 + 0.34) * 1e-6)
    assert arithmetic_energy_j(c, "45nm") == pytest.approx((0.03 + 0.4 + 1.1) * 1e-6)
    with pytest.raises(ValueError, match="7nm"):
        arithmetic_energy_j(c, "3nm")


def test_estimate_is_labelled_and_ternary_is_cheaper():
    t = energy.estimate(SHAPE, True, 32)
    f = energy.estimate(SHAPE, False, 32)
    assert t["method"] == f["method"] == "estimate" and "Horowitz" in t["source"]
    assert 1 < f["j_per_token_7nm"] / t["j_per_token_7nm"] < 71.4  # the head stays FP16
    assert t["j_per_token_45nm"] > t["j_per_token_7nm"]


def test_shape_from_gguf_metadata_both_ways():
    cfg = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}  # fmt: skip
    a = energy.shape_from_gguf_metadata({"ternlab.config_json": json.dumps(cfg)})
    b = energy.shape_from_gguf_metadata(
        {
            "general.architecture": "bitnet",
            "bitnet.embedding_length": 64,
            "bitnet.feed_forward_length": 128,
            "bitnet.block_count": 2,
            "bitnet.attention.head_count": 4,
            "bitnet.attention.head_count_kv": 2,
            "tokenizer.ggml.tokens": ["t"] * 100,
        }  # fmt: skip
    )
    assert a == b == energy.shape_from_config(cfg)


def test_rapl_counter_wraps():
    assert rapl.delta_uj(100, 250, 1000) == 150
    assert rapl.delta_uj(900, 50, 1000) == 150  # wrapped once


def _zone(root: Path, name: str, uj: int) -> None:
    d = root / name
    d.mkdir()
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text("1000000\n")
    (d / "name").write_text("package-0\n")


def test_rapl_reads_package_zones_only(tmp_path):
    """The sysfs layout: packages are intel-rapl:N; intel-rapl:N:M are sub-zones."""
    _zone(tmp_path, "intel-rapl:0", 5)
    _zone(tmp_path, "intel-rapl:0:0", 7)
    zs = rapl.zones(tmp_path)
    assert [z.energy_file.parent.name for z in zs] == ["intel-rapl:0"]
    with rapl.RaplMeter(tmp_path) as m:
        (tmp_path / "intel-rapl:0" / "energy_uj").write_text("500005\n")  # 0.5 J later
    assert m.joules == pytest.approx(0.5) and m.seconds >= 0


def test_rapl_unreadable_is_reported(tmp_path):
    assert not rapl.available(tmp_path)
    with pytest.raises(PermissionError, match="estimate"):
        rapl.RaplMeter(tmp_path)
    # This machine: available() agrees with whether the sysfs counter can be read.
    readable = any(
        p.is_file() and _readable(p)
        for p in Path("/sys/class/powercap").glob("intel-rapl:*/energy_uj")
    )
    assert rapl.available() == readable


def _readable(p: Path) -> bool:
    try:
        int(p.read_text())
        return True
    except (OSError, ValueError):
        return False
