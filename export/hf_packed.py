"""Hugging Face packed checkpoints (``quant_method: bitnet``, offline), as bitnet-b1.58-2B-4T.

Each ternary ``*_proj.weight [out, in]`` becomes ``uint8 [out/4, in]`` in
transformers' layout (:func:`ternlab.bitlinear.pack_hf_bitnet`) plus
``*_proj.weight_scale`` of shape ``[1]``: transformers' ``BitLinear`` divides by
it, so it holds ``s_w = 1 / scale`` (the spec's inverse scale, as computed, so
``1 / s_w`` gives back the float32 scale exactly). We write float32 (the config's
``dtype``), which keeps the scale exact; the published 2B4T uses bfloat16.
Everything else (embeddings, norms, the LM head) is stored as float32.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ternlab.bitlinear.packing import pack_hf_bitnet, unpack_hf_bitnet
from ternlab.bitlinear.quant import weight_inv_scale, weight_quant
from ternlab.export.arch import plan_export
from ternlab.export.atomic import atomic_dir
from ternlab.export.ckpt_writer import Imported, trainable_config, write_checkpoint
from ternlab.export.errors import ExportError
from ternlab.export.latent import latent_from_ternary
from ternlab.export.progress import track
from ternlab.export.source import TOKENIZER_FILES, load_checkpoint

#: What transformers needs to build packed BitLinear layers and load them as stored.
PACKED_QUANTIZATION_CONFIG = {
    "quant_method": "bitnet",
    "linear_class": "bitlinear",
    "quantization_mode": "offline",
    "modules_to_not_convert": ["lm_head"],
}
SCALE_SUFFIX = "_scale"


def packed_state(ckpt, progress: bool = False) -> dict[str, torch.Tensor]:
    """The packed state dict of a ternary checkpoint."""
    out: dict[str, torch.Tensor] = {}
    items = list(ckpt.state.items())
    for name, w in track(items, len(items), "packing", progress):
        if not ckpt.is_ternary_weight(name):
            out[name] = w.contiguous()
            continue
        q = weight_quant(w)
        out[name] = pack_hf_bitnet(q.codes)
        out[name + SCALE_SUFFIX] = weight_inv_scale(w.float()).reshape(1)
    return out


def export_hf_packed(checkpoint: str | Path, out: str | Path, progress: bool = False) -> Path:
    """Write the packed checkpoint folder ``out`` (config, weights, tokenizer), atomically."""
    ckpt = load_checkpoint(checkpoint)
    if not ckpt.ternary:
        raise ExportError(
            f"{ckpt.path}/config.json: a full-precision checkpoint has nothing to pack; "
            "use --type f16 (GGUF) or the checkpoint folder itself"
        )
    plan_export(ckpt, "tq2_0")  # same architecture checks (model type, activation, shape)
    for name, w in ckpt.state.items():
        if ckpt.is_ternary_weight(name) and w.shape[0] % 4:
            raise ExportError(f"tensor {name}: out_features {w.shape[0]} is not a multiple of 4")
    state = packed_state(ckpt, progress)
    config = {**ckpt.config, "quantization_config": PACKED_QUANTIZATION_CONFIG, "dtype": "float32"}
    with atomic_dir(out) as tmp:
        save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        for f in TOKENIZER_FILES:
            if (ckpt.path / f).is_file():
                shutil.copy(ckpt.path / f, tmp / f)
    return Path(out)


def read_hf_packed(folder: str | Path) -> Imported:
    """Read a packed folder back into float32 latent weights with the same codes and scales."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    qc = config.get("quantization_config") or {}
    if qc.get("quant_method") != "bitnet" or qc.get("quantization_mode", "offline") != "offline":
        raise ExportError(
            f"{folder}/config.json: quantization_config is not an offline `bitnet` packing; "
            "a training checkpoint needs no import"
        )
    packed: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        packed.update(load_file(f))
    state = {}
    for name, t in packed.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if name + SCALE_SUFFIX in packed:
            scale = float(1.0 / packed[name + SCALE_SUFFIX].float().reshape(()))
            state[name], _ = latent_from_ternary(_unpack(folder, name, t), scale, name)
        else:
            state[name] = t.float()
    files = {f: (folder / f).read_text() for f in TOKENIZER_FILES if (folder / f).is_file()}
    return Imported(trainable_config(config, ternary=True), state, files)


def _unpack(folder: Path, name: str, packed: torch.Tensor) -> torch.Tensor:
    try:
        return unpack_hf_bitnet(packed)
    except (TypeError, ValueError) as e:
        raise ExportError(f"{folder}: tensor {name} is not a ternary packing: {e}") from e


def import_hf_packed(folder: str | Path, out: str | Path) -> Imported:
    """Import a packed folder and write the trainable checkpoint ``out``."""
    imported = read_hf_packed(folder)
    write_checkpoint(out, imported)
    return imported
