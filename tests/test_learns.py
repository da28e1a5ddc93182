"""A tiny ternary model learns a toy task in a few seconds on CPU."""

import math

import pytest
import torch

from ternlab.bitlinear import freeze, replace_linear

transformers = pytest.importorskip("transformers")


def _counting_batch(g: torch.Generator, vocab: int, batch: int = 16, length: int = 16):
    # Each sequence counts up by a per-sequence stride mod vocab: next token is predictable
    # from the previous two, but not from one token alone.
    start = torch.randint(0, vocab, (batch, 1), generator=g)
    stride = torch.randint(1, 4, (batch, 1), generator=g)
    return (start + stride * torch.arange(length)) % vocab


def test_tiny_ternary_llama_loss_falls():
    vocab = 32
    cfg = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    replace_linear(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        ids = _counting_batch(g, vocab)
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    start, end = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert start > 0.8 * math.log(vocab)
    assert end < 0.1 * start, (start, end)
    # The frozen integer model keeps what was learned.
    model.eval()
    freeze(model)
    with torch.no_grad():
        ids = _counting_batch(g, vocab)
        assert model(input_ids=ids, labels=ids).loss.item() < 0.1 * start
