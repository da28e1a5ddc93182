"""replace_linear on a real (tiny, random) transformers Llama, and the λ schedule."""

import pytest
import torch
from torch import nn

from ternlab.bitlinear import (
    BitLinear,
    QuantStrengthSchedule,
    bitlinear_modules,
    freeze,
    replace_linear,
    set_quant_strength,
)

transformers = pytest.importorskip("transformers")

PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def tiny_llama(tie: bool = False) -> nn.Module:
    cfg = transformers.LlamaConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).eval()


def test_replaces_every_projection_but_not_embeddings_or_head():
    model = tiny_llama()
    names = replace_linear(model)
    assert len(names) == 2 * len(PROJ)
    assert all(name.rsplit(".", 1)[-1] in PROJ for name in names)
    assert type(model.lm_head) is nn.Linear
    assert isinstance(model.model.embed_tokens, nn.Embedding)
    assert all(isinstance(model.get_submodule(n), BitLinear) for n in names)


def test_weights_are_copied_and_the_model_runs():
    model = tiny_llama()
    before = model.model.layers[0].mlp.down_proj.weight.detach().clone()
    replace_linear(model)
    assert torch.equal(model.model.layers[0].mlp.down_proj.weight, before)
    ids = torch.randint(0, 97, (2, 9))
    logits = model(ids).logits
    assert logits.shape == (2, 9, 97) and bool(torch.isfinite(logits).all())


def test_include_exclude_patterns():
    model = tiny_llama()
    names = replace_linear(model, include=["*.mlp.*"], exclude=["*.down_proj"])
    assert sorted({n.rsplit(".", 1)[-1] for n in names}) == ["gate_proj", "up_proj"]
    with pytest.raises(ValueError, match="matched no nn.Linear"):
        replace_linear(tiny_llama(), include=["*.nothing_here"])


def test_head_can_be_quantized_on_request():
    model = tiny_llama()
    names = replace_linear(model, exclude=[])
    assert "lm_head" in names and isinstance(model.lm_head, BitLinear)


def test_tied_head_is_left_alone():
    model = tiny_llama(tie=True)
    replace_linear(model)
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_save_and_reload_with_transformers(tmp_path):
    model = tiny_llama()
    replace_linear(model)
    ids = torch.randint(0, 97, (1, 12))
    with torch.no_grad():
        expected = model(ids).logits
    model.save_pretrained(tmp_path)
    # The latent weights keep nn.Linear's names, so a plain Llama loads them ...
    plain = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    replace_linear(plain)  # ... and the same surgery gives the same model back.
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, expected)


def test_frozen_model_state_dict_round_trips(tmp_path):
    model = tiny_llama()
    replace_linear(model)
    freeze(model)
    ids = torch.randint(0, 97, (1, 10))
    with torch.no_grad():
        expected = model(ids).logits
    torch.save(model.state_dict(), tmp_path / "frozen.pt")
    other = tiny_llama()
    replace_linear(other)
    freeze(other)
    other.load_state_dict(torch.load(tmp_path / "frozen.pt"))
    with torch.no_grad():
        assert torch.equal(other(ids).logits, expected)
    assert all(m.frozen for _, m in bitlinear_modules(other))


def test_quant_strength_schedule_and_setter():
    sched = QuantStrengthSchedule(warmup_steps=4)
    assert [sched(s) for s in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert QuantStrengthSchedule()(0) == 1.0
    assert QuantStrengthSchedule(warmup_steps=2, start=0.5)(1) == 0.75
    model = tiny_llama()
    replace_linear(model)
    set_quant_strength(model, 0.25)
    assert {m.quant_strength for _, m in bitlinear_modules(model)} == {0.25}
    with pytest.raises(ValueError, match=r"`strength` must be in \[0, 1\]"):
        set_quant_strength(model, 1.5)
    with pytest.raises(ValueError, match="`warmup_steps` must be >= 0"):
        QuantStrengthSchedule(warmup_steps=-1)


def test_zero_strength_reproduces_the_full_precision_model():
    ref = tiny_llama()
    model = tiny_llama()
    replace_linear(model)
    set_quant_strength(model, 0.0)
    ids = torch.randint(0, 97, (2, 7))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)
