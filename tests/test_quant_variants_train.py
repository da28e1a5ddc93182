"""Quantization variants from the config: conf/quant/*.yaml → BitLinear, and export refuses them."""

from __future__ import annotations

import json

import pytest

from ternlab.bitlinear import bitlinear_modules
from ternlab.export.arch import plan_export
from ternlab.export.errors import ExportError
from ternlab.export.source import load_checkpoint
from ternlab.train import compose, train
from ternlab.train.config import ConfigError


def _overrides(tmp_path, *extra: str) -> list[str]:
    return [
        "model=tiny",
        "tracking=disabled",
        "data.seq_len=32",
        "data.arith.num_examples=300",
        "trainer.batch_size=4",
        "trainer.max_steps=3",
        "trainer.progress=false",
        "trainer.plot=false",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"trainer.output_dir={tmp_path / 'run'}",
        *extra,
    ]


def test_hadamard_a4_preset_trains_and_export_refuses_it(tmp_path, monkeypatch):
    import ternlab.train.loop as loop

    built = {}
    real = loop.build_model
    monkeypatch.setattr(loop, "build_model", lambda *a, **k: built.setdefault("m", real(*a, **k)))
    res = train(compose(_overrides(tmp_path, "quant=ternary_a4_hadamard")))
    schemes = {n: m.scheme for n, m in bitlinear_modules(built["m"])}
    assert all(s.act_bits == 4 for s in schemes.values())
    assert {n.rsplit(".", 1)[-1] for n, s in schemes.items() if s.hadamard} == {
        "o_proj",
        "down_proj",
    }
    saved = json.loads((res.checkpoint / "config.json").read_text())["ternlab_quant"]
    assert saved == {"quant.act_bits": 4, "quant.hadamard_modules": ["*.o_proj", "*.down_proj"]}
    with pytest.raises(ExportError, match=r"quant\.act_bits=4.*quant=ternary"):
        plan_export(load_checkpoint(res.checkpoint), "i2_s")


def test_default_quant_records_no_variant(tmp_path):
    res = train(compose(_overrides(tmp_path)))
    assert "ternlab_quant" not in json.loads((res.checkpoint / "config.json").read_text())
    assert plan_export(load_checkpoint(res.checkpoint), "i2_s").qtype == "i2_s"


@pytest.mark.parametrize(
    "override, match",
    [
        ("quant.act_bits=2", "quant.act_bits"),
        ("quant.weight_scale=row", "quant.weight_scale"),
        ("quant.weight_group_size=48", "must divide"),
    ],
)
def test_bad_variant_values_name_the_key(tmp_path, override, match):
    extra = ["quant.weight_scale=group"] if "group_size" in override else []
    with pytest.raises(ConfigError, match=match):
        compose(_overrides(tmp_path, *extra, override))
