"""Build the training model: transformers' BitNet b1.58 architecture with ternlab BitLinear.

``quant.method=ternary`` swaps every ``nn.Linear`` except the LM head for
``BitLinear`` (latent full-precision weights, fake-quantized on the fly);
``quant.method=none`` keeps plain ``nn.Linear``: the full-precision baseline with
the identical architecture. ``model.init_from`` starts from any pretrained
Llama-like causal LM (a folder or a Hub id) instead (its own architecture is kept).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    BitNetConfig,
    BitNetForCausalLM,
    PreTrainedModel,
)

from ternlab.bitlinear import replace_linear
from ternlab.hub import resolve
from ternlab.train.config import ModelConfig, QuantConfig
from ternlab.train.quant_scheme import quant_scheme, variant_key_values

#: What transformers needs in ``config.json`` to apply the same fake quantization on load:
#: ``AutoBitLinear(online_quant=True)`` quantizes the stored latent weights per tensor (absmean,
#: float32) and the activations per token (absmax, int8 range) exactly like ternlab's spec.
HF_QUANTIZATION_CONFIG = {
    "quant_method": "bitnet",
    "linear_class": "autobitlinear",
    "quantization_mode": "online",
}


def bitnet_config(
    cfg: ModelConfig, vocab_size: int, bos_id: int | None, eos_id: int | None, pad_id: int | None
) -> BitNetConfig:
    """The ``transformers`` config of a from-scratch model."""
    return BitNetConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        hidden_act=cfg.hidden_act,
        max_position_embeddings=cfg.max_position_embeddings,
        initializer_range=cfg.initializer_range,
        rms_norm_eps=cfg.rms_norm_eps,
        tie_word_embeddings=cfg.tie_word_embeddings,
        # ``rope_theta`` works on both config APIs: transformers 4.x reads it as is, 5.x
        # moves it into ``rope_parameters`` (passing only ``rope_parameters`` would be
        # dropped silently by 4.x, which then uses its default base).
        rope_theta=cfg.rope_theta,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        attention_bias=False,
    )


def _vocab_size(cfg: ModelConfig, tokenizer_len: int) -> int:
    if cfg.vocab_size is None:
        return tokenizer_len
    if cfg.vocab_size < tokenizer_len:
        raise ValueError(
            f"model.vocab_size={cfg.vocab_size} is smaller than the tokenizer ({tokenizer_len} "
            f"tokens); set model.vocab_size=null or use a matching data.tokenizer"
        )
    return cfg.vocab_size


def _load_pretrained(path: str) -> PreTrainedModel:
    path = resolve(path, "model.init_from")  # a folder, or a Hub id downloaded (cached)
    if not path.is_dir():
        raise FileNotFoundError(
            f"model.init_from: no model folder at {str(path)!r}; give a transformers causal LM "
            "folder or a Hub id (owner/name)"
        )
    config = AutoConfig.from_pretrained(path)
    qc = getattr(config, "quantization_config", None) or {}
    if qc.get("quant_method") == "bitnet":
        if qc.get("quantization_mode") != "online":
            raise ValueError(
                f"model.init_from: {path} is a packed ternary folder (quantization_config "
                "quant_method 'bitnet', offline); import it first: `ternlab import "
                f"{path} -o CKPT`, then model.init_from=CKPT"
            )
        # A ternary checkpoint's latent weights: plain nn.Linear here, so that ternlab's
        # BitLinear (and its λ schedule) replaces them, not transformers' AutoBitLinear.
        del config.quantization_config
    # float32 latent weights: the optimizer and the fake quantizer both want full precision.
    return AutoModelForCausalLM.from_pretrained(path, config=config, dtype=torch.float32)


def build_model(cfg: ModelConfig, quant: QuantConfig, tokenizer) -> PreTrainedModel:
    """A fresh (or ``init_from``) causal LM, with BitLinear layers for ``quant.method=ternary``."""
    if cfg.init_from:
        model = _load_pretrained(cfg.init_from)
        if model.config.vocab_size < len(tokenizer):
            raise ValueError(
                f"model.init_from: the model's vocabulary ({model.config.vocab_size}) is smaller "
                f"than the tokenizer's ({len(tokenizer)}); use the model's own tokenizer "
                "(data.tokenizer=<the model folder>)"
            )
    else:
        conf = bitnet_config(
            cfg,
            _vocab_size(cfg, len(tokenizer)),
            tokenizer.bos_token_id,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
        )
        model = BitNetForCausalLM(conf)
    model.float()
    if quant.method == "ternary":
        replace_linear(
            model,
            exclude=quant.exclude,
            scheme=quant_scheme(quant),
            hadamard=quant.hadamard_modules,
        )
        if variant_key_values(quant):  # what export reads to refuse what no runtime computes
            model.config.ternlab_quant = variant_key_values(quant)
        # Tell transformers exactly which Linear layers stay full precision (the LM head).
        keep = [n for n, m in model.named_modules() if type(m) is nn.Linear]
        model.config.quantization_config = {
            **HF_QUANTIZATION_CONFIG,
            "modules_to_not_convert": keep,
        }
    return model


def count_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
