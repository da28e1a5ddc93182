"""Hugging Face packed checkpoints (``quant_method: bitnet``, offline), as bitnet-b1.58-2B-4T.

Each ternary ``*_proj.weight [out, in]`` becomes ``uint8 [out/4, in]`` in
transformers' layout (:func:`ternlab.bitlinear.pack_hf_bitnet`) plus
``*_proj.weight_scale`` of shape ``[1]``. What ``weight_scale`` means depends on
``quantization_config.linear_class`` (transformers ``integrations/bitnet.py``):

* ``autobitlinear`` (what microsoft/bitnet-b1.58-2B-4T publishes, our default):
  ``AutoBitLinear`` *multiplies* its output by it, so it is the scale itself
  (``mean|W|``);
* ``bitlinear`` (transformers' default when the key is absent, e.g.
  HF1BitLLM/Llama3-8B-1.58): ``BitLinear`` *divides* by it, so it is ``1 / scale``.

Any other value, an online (latent-weight) folder, ``use_rms_norm`` or a
projection left unpacked by ``modules_to_not_convert`` is refused naming the key:
reading one convention as the other gives a silently wrong model. We store the
scales as float32 (config ``dtype``), which keeps them exact; 2B4T stores bfloat16.
Embeddings, norms and an untied head are float32.
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
from ternlab.export.source import TERNARY_RE, TOKENIZER_FILES, load_checkpoint

#: ``linear_class`` -> whether transformers' layer multiplies by ``weight_scale`` (else divides).
MULTIPLIES = {"autobitlinear": True, "bitlinear": False}
#: transformers' ``BitNetQuantConfig`` defaults: a missing key means these.
QC_DEFAULTS = {"linear_class": "bitlinear", "quantization_mode": "offline", "use_rms_norm": False}
DEFAULT_LINEAR_CLASS = "autobitlinear"
SCALE_SUFFIX = "_scale"


def packed_quantization_config(linear_class: str = DEFAULT_LINEAR_CLASS) -> dict:
    """The ``quantization_config`` we write: 2B4T's, with ``linear_class`` as given."""
    if linear_class not in MULTIPLIES:
        raise ExportError(
            f"linear_class={linear_class!r}: choose one of {', '.join(sorted(MULTIPLIES))} "
            "(transformers' packed BitNet layers)"
        )
    return {"quant_method": "bitnet", "linear_class": linear_class, "quantization_mode": "offline"}


def stored_scale(scale: torch.Tensor, linear_class: str) -> torch.Tensor:
    """``weight_scale`` as ``linear_class`` applies it: the scale, or its inverse."""
    return scale if MULTIPLIES[linear_class] else 1.0 / scale


def packed_state(
    ckpt, linear_class: str = DEFAULT_LINEAR_CLASS, progress: bool = False
) -> dict[str, torch.Tensor]:
    """The packed state dict of a ternary checkpoint."""
    out: dict[str, torch.Tensor] = {}
    items = list(ckpt.state.items())
    for name, w in track(items, len(items), "packing", progress):
        if not ckpt.is_ternary_weight(name):
            out[name] = w.contiguous()
            continue
        q = weight_quant(w)
        out[name] = pack_hf_bitnet(q.codes)
        # the spec computes s_w = 1 / mean first; scale = 1 / s_w is exactly weight_quant's
        inv = weight_inv_scale(w.float()).reshape(1)
        out[name + SCALE_SUFFIX] = q.scale.reshape(1).float() if MULTIPLIES[linear_class] else inv
    return out


def export_hf_packed(
    checkpoint: str | Path,
    out: str | Path,
    progress: bool = False,
    linear_class: str = DEFAULT_LINEAR_CLASS,
) -> Path:
    """Write the packed checkpoint folder ``out`` (config, weights, tokenizer), atomically."""
    qc = packed_quantization_config(linear_class)
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
    state = packed_state(ckpt, linear_class, progress)
    config = {**ckpt.config, "quantization_config": qc, "dtype": "float32"}
    with atomic_dir(out) as tmp:
        save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        for f in TOKENIZER_FILES:
            if (ckpt.path / f).is_file():
                shutil.copy(ckpt.path / f, tmp / f)
    return Path(out)


def packed_linear_class(folder: Path, config: dict) -> str:
    """The folder's ``linear_class``, after refusing every setting we cannot read exactly."""
    where = f"{folder}/config.json"
    qc = {**QC_DEFAULTS, **(config.get("quantization_config") or {})}
    if qc.get("quant_method") != "bitnet":
        raise ExportError(
            f"{where}: quantization_config.quant_method={qc.get('quant_method')!r}; ternlab "
            "imports packed BitNet folders (quant_method 'bitnet')"
        )
    if qc["quantization_mode"] != "offline":
        raise ExportError(
            f"{where}: quantization_config.quantization_mode={qc['quantization_mode']!r}; only "
            "'offline' folders are packed (an 'online' folder holds latent weights: a ternlab "
            "training checkpoint needs no import)"
        )
    if qc["linear_class"] not in MULTIPLIES:
        raise ExportError(
            f"{where}: quantization_config.linear_class={qc['linear_class']!r}; ternlab reads "
            "'autobitlinear' (weight_scale multiplies) and 'bitlinear' (weight_scale divides)"
        )
    if qc["use_rms_norm"]:
        raise ExportError(
            f"{where}: quantization_config.use_rms_norm=true adds an RMSNorm inside every "
            "BitLinear, which the BitNet architecture (and the GGUF runtimes) do not have"
        )
    return qc["linear_class"]


def read_hf_packed(folder: str | Path) -> Imported:
    """Read a packed folder back into float32 latent weights with the same codes and scales."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ExportError(f"{folder}: no config.json; give an hf-packed model folder")
    config = json.loads((folder / "config.json").read_text())
    linear_class = packed_linear_class(folder, config)
    packed: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        packed.update(load_file(f))
    if not packed:
        raise ExportError(f"{folder}: no *.safetensors weights")
    state, moved = {}, []
    for name, t in packed.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if name + SCALE_SUFFIX in packed:
            ws = packed[name + SCALE_SUFFIX].float().reshape(())
            scale = float(stored_scale(ws, linear_class))
            # bfloat16 scales (2B4T) may not be a float32 mean exactly: nearest, and say so
            state[name], got = latent_from_ternary(
                _unpack(folder, name, t), scale, name, nearest=True
            )
            if got != scale:
                moved.append(f"{name}: {scale!r} -> {got!r}")
        elif TERNARY_RE.fullmatch(name):
            raise ExportError(
                f"{folder}: tensor {name} is not packed (no {name}{SCALE_SUFFIX}); "
                "quantization_config.modules_to_not_convert leaves a projection in full "
                "precision, which a BitNet model cannot hold"
            )
        else:
            state[name] = t.float()
    files = {f: (folder / f).read_text() for f in TOKENIZER_FILES if (folder / f).is_file()}
    # A Llama folder (HF1BitLLM, Falcon-E: no sub-norms) stays a Llama; the rest is BitNet.
    model_type = "llama" if config.get("model_type") == "llama" else "bitnet"
    return Imported(trainable_config(config, True, model_type), state, files, moved)


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
