"""Write a trainable ternlab checkpoint folder (training's layout) from imported tensors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from ternlab.export.atomic import atomic_dir
from ternlab.train.model import HF_QUANTIZATION_CONFIG


@dataclass
class Imported:
    """An imported model: config, float32 latent weights, tokenizer files, scale notes."""

    config: dict
    state: dict[str, torch.Tensor]
    tokenizer_files: dict[str, str] = field(default_factory=dict)  # file name -> text
    scale_changes: list[str] = field(default_factory=list)  # tensors whose scale moved
    notes: list[str] = field(default_factory=list)  # what was inferred, not read from the source


#: The transformers class of each model type an imported checkpoint may have.
ARCHITECTURES = {"bitnet": "BitNetForCausalLM", "llama": "LlamaForCausalLM"}


def trainable_config(config: dict, ternary: bool, model_type: str = "bitnet") -> dict:
    """``config.json`` of a training checkpoint: online BitLinear quantization for ternary.

    ``model_type`` ``llama`` keeps a Llama graph (no sub-norms: HF1BitLLM, Falcon-E)."""
    c = {k: v for k, v in config.items() if k != "quantization_config"}
    c["architectures"] = [ARCHITECTURES[model_type]]
    c["model_type"] = model_type
    if ternary:
        c["quantization_config"] = {**HF_QUANTIZATION_CONFIG, "modules_to_not_convert": ["lm_head"]}
    return c


def write_checkpoint(out: str | Path, imported: Imported) -> Path:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer into ``out`` atomically."""
    out = Path(out)
    with atomic_dir(out) as tmp:
        state = {k: v.contiguous() for k, v in imported.state.items()}
        save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(imported.config, indent=2, sort_keys=True))
        for name, text in imported.tokenizer_files.items():
            (tmp / name).write_text(text)
    return out
