"""Hydra configs: every preset composes, misspelled keys and bad values fail clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

from ternlab.train import compose
from ternlab.train.config import ConfigError, TrainConfig, to_dataclass
from ternlab.train.model import bitnet_config

PRESETS = ["tiny", "small", "125m", "350m", "700m", "2b"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_model_preset_composes(preset):
    cfg = compose([f"model={preset}"])
    assert isinstance(cfg, TrainConfig) and cfg.model.name == preset
    assert cfg.run_name == f"{preset}-ternary-arith"


def test_presets_have_the_published_shapes():
    b = compose(["model=2b"]).model
    assert (b.hidden_size, b.num_hidden_layers, b.intermediate_size) == (2560, 30, 6912)
    assert (b.num_attention_heads, b.num_key_value_heads, b.vocab_size) == (20, 5, 128256)
    assert b.hidden_act == "relu2" and b.tie_word_embeddings
    large = compose(["model=700m"]).model
    assert (large.hidden_size, large.num_hidden_layers, large.hidden_act) == (1536, 24, "silu")


def test_tiny_is_well_under_a_million_parameters():
    from transformers import BitNetForCausalLM

    m = compose(["model=tiny"]).model
    model = BitNetForCausalLM(bitnet_config(m, 512, 1, 2, 0))
    assert sum(p.numel() for p in model.parameters()) < 300_000


@pytest.mark.parametrize("group", ["data", "quant", "optim", "tracking"])
def test_every_group_option_composes(group):
    from importlib.resources import files

    options = [
        p.name[:-5] for p in (files("ternlab.conf") / group).iterdir() if p.name.endswith(".yaml")
    ]
    assert options
    for opt in options:
        compose([f"{group}={opt}"])


def test_misspelled_override_names_the_key():
    with pytest.raises(ConfigCompositionException) as err:
        compose(["trainer.max_stepz=3"])
    chain = f"{err.value} {err.value.__cause__}"
    assert "max_stepz" in chain and "TrainerConfig" in chain


def test_misspelled_key_in_a_yaml_file_names_file_key_and_schema(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text("name: mine\nhiden_size: 8\n")
    with pytest.raises(ConfigCompositionException) as err:
        compose([f"hydra.searchpath=[file://{tmp_path}]", "model=mine"])
    msg = str(err.value)
    assert "In 'model/mine'" in msg and "Key 'hiden_size' not in 'ModelConfig'" in msg
    assert "full_key: model.hiden_size" in msg


def test_unknown_key_in_a_plain_dict_config_is_refused():
    with pytest.raises(ConfigKeyError, match="full_key: model.hiden_size"):
        to_dataclass(OmegaConf.create({"model": {"hiden_size": 8}}))


def test_bad_choice_names_key_group_and_options():
    with pytest.raises(ConfigError, match=r"`model.hidden_act` = 'gelu' .*relu2.*silu.*conf/model"):
        compose(["model.hidden_act=gelu"])


def test_cli_misspelled_key_exits_with_a_clear_message():
    proc = subprocess.run(
        [sys.executable, "-m", "ternlab.train", "trainer.max_stepz=3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Could not override 'trainer.max_stepz'" in proc.stderr
    assert "Key 'max_stepz' not in 'TrainerConfig'" in proc.stderr
    assert "full_key: trainer.max_stepz" in proc.stderr


def test_cli_help_lists_groups_and_presets():
    proc = subprocess.run(
        [sys.executable, "-m", "ternlab", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "model: 125m, 2b, 350m, 700m, small, tiny" in proc.stdout
    assert "quant: none, ternary" in proc.stdout and "data: arith" in proc.stdout
