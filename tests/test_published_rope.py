"""``model.rope_theta`` reaches the transformers config (and the forward) on its RoPE API."""

from __future__ import annotations

import pytest

from ternlab.train.config import ModelConfig
from ternlab.train.model import bitnet_config


def config_rope_theta(conf) -> float:
    """The RoPE base a transformers config uses: 5.x ``rope_parameters``, 4.x ``rope_theta``."""
    params = getattr(conf, "rope_parameters", None)
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    return float(conf.rope_theta)


@pytest.mark.parametrize("theta", [10000.0, 123456.0])
def test_rope_theta_reaches_the_model_config(theta, tmp_path):
    from transformers import AutoConfig, BitNetForCausalLM

    conf = bitnet_config(ModelConfig(rope_theta=theta), 64, 1, 2, 0)
    assert config_rope_theta(conf) == theta
    model = BitNetForCausalLM(conf)
    inv_freq = model.model.rotary_emb.inv_freq  # what the forward uses
    head_dim = conf.hidden_size // conf.num_attention_heads
    assert inv_freq[1].item() == pytest.approx(theta ** (-2 / head_dim), rel=1e-6)
    conf.save_pretrained(tmp_path)
    assert config_rope_theta(AutoConfig.from_pretrained(tmp_path)) == theta
