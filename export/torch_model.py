"""A ternlab checkpoint as a PyTorch model with ternlab's BitLinear (the interop reference)."""

from __future__ import annotations

from pathlib import Path

from transformers import BitNetConfig, BitNetForCausalLM

from ternlab.bitlinear import replace_linear
from ternlab.export.source import load_checkpoint


def load_torch_model(checkpoint: str | Path) -> BitNetForCausalLM:
    """The checkpoint's model in eval mode: BitLinear (spec fake-quant) for ternary runs."""
    ckpt = load_checkpoint(checkpoint)
    config = {k: v for k, v in ckpt.config.items() if k != "quantization_config"}
    model = BitNetForCausalLM(BitNetConfig(**config)).float()
    if ckpt.ternary:
        replace_linear(model)
    missing, unexpected = model.load_state_dict(ckpt.state, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise RuntimeError(f"{checkpoint}: weights do not match the config: {missing} {unexpected}")
    if ckpt.tied:
        model.tie_weights()
    return model.eval()
