"""Published ternary model folders that are not hf-packed: read into a trainable checkpoint.

* 1bitLLM (``1bitLLM/bitnet_b1_58-large``, ``-xl``, ``-3B``): ``architectures:
  [BitnetForCausalLM]`` with its own ``modeling_bitnet.py`` / ``utils_quant.py``,
  ``model_type: llama`` in ``config.json``, float16 *latent* weights in plain
  ``nn.Linear`` tensors, quantized online at every forward (absmean ternary weights,
  per-token absmax 8-bit activations: the spec's formulas), and BitNet's sub-norms
  under their old names ``self_attn.inner_attn_ln`` / ``mlp.ffn_layernorm``. The
  graph is transformers' ``BitNetForCausalLM`` with a SiLU FFN, so import renames
  the sub-norms, widens the latent weights to float32 (exact) and writes a
  ``model_type: bitnet`` training checkpoint: the same codes and scales.

:func:`read_folder` picks the reader of a folder: a ``quant_method: bitnet`` folder
is hf-packed (:mod:`ternlab.export.hf_packed`), a 1bitLLM folder is read here, and
anything else is refused by the hf-packed reader, naming the key.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ternlab.export.ckpt_writer import Imported, trainable_config
from ternlab.export.errors import ExportError
from ternlab.export.source import TOKENIZER_FILES

#: 1bitLLM's names of the BitNet sub-norms -> transformers' (llama.cpp maps both the same way).
ONEBITLLM_RENAMES = {
    ".self_attn.inner_attn_ln.weight": ".self_attn.attn_sub_norm.weight",
    ".mlp.ffn_layernorm.weight": ".mlp.ffn_sub_norm.weight",
}
#: config.json keys of 1bitLLM's ``BitnetConfig`` that the BitNet config does not have.
ONEBITLLM_ONLY_KEYS = ("weight_bits", "input_bits", "auto_map", "pretraining_tp")


def is_onebitllm(config: dict) -> bool:
    """Whether ``config.json`` is a 1bitLLM ``BitnetForCausalLM`` (latent weights, own code)."""
    return "BitnetForCausalLM" in (config.get("architectures") or []) and "weight_bits" in config


def read_onebitllm(folder: str | Path) -> Imported:
    """Read a 1bitLLM folder: float32 latent weights (same codes and scales), BitNet names."""
    folder = Path(folder)
    where = f"{folder}/config.json"
    config = json.loads((folder / "config.json").read_text())
    bits = (config.get("weight_bits"), config.get("input_bits", 8))
    if bits != (1, 8):
        raise ExportError(
            f"{where}: weight_bits={bits[0]!r}, input_bits={bits[1]!r}; ternlab reads 1bitLLM's "
            "b1.58 models (weight_bits 1: ternary absmean weights, input_bits 8)"
        )
    if config.get("hidden_act", "silu") != "silu":
        raise ExportError(f"{where}: hidden_act={config['hidden_act']!r}; 1bitLLM models use silu")
    state = _renamed(folder, _load(folder))
    tied = bool(config.get("tie_word_embeddings", True))
    head = state.pop("lm_head.weight", None)
    if tied and head is not None and not torch.equal(head, state["model.embed_tokens.weight"]):
        raise ExportError(
            f"{where}: tie_word_embeddings=true but lm_head.weight differs from "
            "model.embed_tokens.weight; set tie_word_embeddings=false if the head is its own"
        )
    if not tied:
        if head is None:
            raise ExportError(f"{folder}: tie_word_embeddings=false but no lm_head.weight")
        state["lm_head.weight"] = head
    plain = {k: v for k, v in config.items() if k not in ONEBITLLM_ONLY_KEYS}
    plain["tie_word_embeddings"] = tied
    files = {f: (folder / f).read_text() for f in TOKENIZER_FILES if (folder / f).is_file()}
    notes = [] if "tokenizer.json" in files else [_no_tokenizer_json(folder)]
    return Imported(trainable_config(plain, ternary=True), state, files, notes=notes)


def _load(folder: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update({k: v.float() for k, v in load_file(f).items()})
    if not state:
        raise ExportError(
            f"{folder}: no *.safetensors weights (a pytorch_model.bin folder: load it with "
            "transformers and save_pretrained(safe_serialization=True) first)"
        )
    return state


def _renamed(folder: Path, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in state.items():
        for old, new in ONEBITLLM_RENAMES.items():
            if name.endswith(old):
                name = name[: -len(old)] + new
        out[name] = t
    n_layers = sum(1 for n in out if n.endswith(".self_attn.attn_sub_norm.weight"))
    if n_layers == 0 or n_layers != sum(1 for n in out if n.endswith(".mlp.ffn_sub_norm.weight")):
        raise ExportError(
            f"{folder}: a 1bitLLM folder has self_attn.inner_attn_ln and mlp.ffn_layernorm in "
            "every layer; these weights lack them (not a BitNet b1.58 model)"
        )
    return out


def _no_tokenizer_json(folder: Path) -> str:
    return (
        f"{folder} has no tokenizer.json (1bitLLM ships tokenizer.model); GGUF export and "
        "training need one: `AutoTokenizer.from_pretrained(DIR, use_fast=True)"
        ".save_pretrained(CHECKPOINT)` (needs sentencepiece) writes it"
    )


def read_folder(folder: str | Path) -> Imported:
    """The :class:`Imported` model of a published folder: hf-packed or 1bitLLM."""
    from ternlab.export.hf_packed import read_hf_packed

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ExportError(f"{folder}: no config.json; give a model folder")
    config = json.loads((folder / "config.json").read_text())
    if is_onebitllm(config):
        return read_onebitllm(folder)
    return read_hf_packed(folder)  # refuses, naming the key, what is not packed BitNet
