"""``ternlab export --type ...``: a checkpoint -> one GGUF file, verified, written atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gguf import GGUFWriter

from ternlab.bitlinear.quant import weight_quant
from ternlab.export import codec, names
from ternlab.export.arch import Plan, gguf_rows, plan_export
from ternlab.export.atomic import atomic_file
from ternlab.export.errors import ExportError
from ternlab.export.metadata import K_SCALES, write_metadata
from ternlab.export.progress import track
from ternlab.export.source import Checkpoint, load_checkpoint

EMBEDDINGS = ("model.embed_tokens.weight", "lm_head.weight")


@dataclass
class ExportResult:
    """What was written: the file, its architecture and size."""

    path: Path
    arch: str
    qtype: str
    nbytes: int


def tensor_type(ckpt: Checkpoint, plan: Plan, name: str) -> str:
    """The GGUF type of one checkpoint tensor under ``plan``."""
    if name in EMBEDDINGS:
        return plan.embed_type
    if ckpt.is_ternary_weight(name):
        return plan.qtype
    if name.endswith("_proj.weight"):
        return plan.qtype  # the FP baseline's linear weights: f16 / q8_0
    return "f32"  # norms


def export_names(ckpt: Checkpoint) -> list[str]:
    """The checkpoint tensors that go into the file, in GGUF order (embedding first)."""
    keep = [n for n in ckpt.state if not (n == "lm_head.weight" and ckpt.tied)]
    if "model.embed_tokens.weight" not in keep:
        raise ExportError(f"{ckpt.path}: model.safetensors has no model.embed_tokens.weight")
    order = {"model.embed_tokens.weight": 0, "model.norm.weight": 2, "lm_head.weight": 3}
    return sorted(keep, key=lambda n: (order.get(n, 1), _layer_key(n)))


def _layer_key(name: str) -> tuple[int, str]:
    parts = name.split(".")
    return (int(parts[2]), name) if name.startswith("model.layers.") else (-1, name)


def check_rows(ckpt: Checkpoint, plan: Plan) -> None:
    """Refuse, before writing anything, a tensor whose rows the chosen type cannot pack."""
    hint = {
        "tq1_0": "use hidden_size and intermediate_size multiples of 256, or --type i2_s",
        "tq2_0": "use hidden_size and intermediate_size multiples of 256, or --type i2_s",
        "i2_s": "use hidden_size and intermediate_size multiples of 128",
        "q8_0": "use a hidden_size that is a multiple of 32, or f16",
        "q6_k": "use a hidden_size that is a multiple of 256, or --embed-type f16",
        "q4_0": "use a hidden_size that is a multiple of 32, or --embed-type f16",
    }
    for name in export_names(ckpt):
        t = tensor_type(ckpt, plan, name)
        if t in hint:
            label = f"{name} (GGUF {names.to_gguf(name)})"
            codec.check_row(label, tuple(ckpt.state[name].shape), t, hint[t])


def ternary_of(ckpt: Checkpoint, name: str) -> tuple[np.ndarray, np.float32]:
    """The spec's codes and float32 scale of a latent weight."""
    q = weight_quant(ckpt.state[name])
    return q.codes.numpy(), np.float32(q.scale.item())


def add_tensor(
    w: GGUFWriter, ckpt: Checkpoint, plan: Plan, name: str, scales: dict[str, float]
) -> None:
    """Encode one checkpoint tensor into the writer; record a ternary tensor's exact scale."""
    gname = names.to_gguf(name)
    t = tensor_type(ckpt, plan, name)
    if t in codec.TERNARY_TYPES:
        codes, scale = ternary_of(ckpt, name)
        codec.add_ternary(w, gname, gguf_rows(ckpt, plan, name, codes), scale, t)
        scales[gname] = float(scale)
    else:
        codec.add_float(w, gname, gguf_rows(ckpt, plan, name, ckpt.state[name].numpy()), t)


def export_gguf(
    checkpoint: str | Path,
    out: str | Path,
    qtype: str,
    embed_type: str = "f16",
    verify: bool = True,
    progress: bool = False,
) -> ExportResult:
    """Export ``checkpoint`` to the GGUF ``out``; on :class:`ExportError` nothing is written."""
    ckpt = load_checkpoint(checkpoint)
    plan = plan_export(ckpt, qtype, embed_type)
    ckpt.tokenizer_json()  # fail early on a missing tokenizer
    check_rows(ckpt, plan)
    out = Path(out)
    with atomic_file(out) as tmp, torch.no_grad():
        w = GGUFWriter(tmp, plan.arch)
        write_metadata(w, ckpt, plan)
        todo = export_names(ckpt)
        scales: dict[str, float] = {}
        for name in track(todo, len(todo), f"encoding {qtype}", progress):
            add_tensor(w, ckpt, plan, name, scales)
        if scales:
            # TQ blocks hold the scale in fp16; this key lets `ternlab import` restore the
            # checkpoint's float32 scale exactly (runtimes use the blocks' own scales).
            w.add_string(K_SCALES, json.dumps(scales, sort_keys=True))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        if verify:
            from ternlab.export.verify import verify_gguf

            verify_gguf(tmp, ckpt, plan, progress=progress)
        nbytes = tmp.stat().st_size
    return ExportResult(out, plan.arch, qtype, nbytes)
