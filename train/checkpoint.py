"""Checkpoints: a ``transformers`` model folder plus the exact training state, written atomically.

Layout of ``<output_dir>/checkpoints/step-00000100/``::

    config.json, model.safetensors, generation_config.json   # from_pretrained loads these
    tokenizer.json, tokenizer_config.json, ...               # the run's tokenizer
    trainer_state.json                                       # step, λ, the resolved config
    train_state/                                             # accelerate: optimizer, scheduler,
                                                             # RNG states of every process

A checkpoint is built under ``.tmp-step-...`` and renamed into place with
``os.replace``; only then is the ``latest`` pointer file (also replaced
atomically) moved to it. A run killed mid-save leaves the previous
checkpoint as ``latest``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file

CHECKPOINTS = "checkpoints"
LATEST = "latest"
STATE_DIR = "train_state"
TRAINER_STATE = "trainer_state.json"


def install_state_hooks(accelerator: Accelerator) -> None:
    """Keep model weights out of accelerate's state folder: they live in model.safetensors."""
    accelerator.register_save_state_pre_hook(lambda models, weights, _dir: weights.clear())
    accelerator.register_load_state_pre_hook(lambda models, _dir: models.clear())


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint after ``step`` optimizer steps."""
    return f"step-{step:08d}"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint the ``latest`` pointer names, or ``None`` if there is none yet."""
    root = Path(output_dir) / CHECKPOINTS
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    ckpt = root / pointer.read_text().strip()
    return ckpt if (ckpt / TRAINER_STATE).is_file() else None


def _prune(root: Path, keep_last: int, latest: str) -> None:
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in done[: max(len(done) - keep_last, 0)]:
        if old.name != latest:
            shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    accelerator: Accelerator,
    model: torch.nn.Module,
    tokenizer,
    output_dir: str | Path,
    step: int,
    meta: dict[str, Any],
    keep_last: int = 2,
) -> Path:
    """Write the checkpoint of ``step`` (collective: every process must call it)."""
    root = Path(output_dir) / CHECKPOINTS
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # collective under FSDP
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        (tmp / TRAINER_STATE).write_text(json.dumps({"step": step, **meta}, indent=2))
    accelerator.save_state(str(tmp / STATE_DIR))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # re-saving a step: move the old one aside first
            old = root / f".old-{final.name}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
        _atomic_write_text(root / LATEST, final.name)
        _prune(root, keep_last, final.name)
    accelerator.wait_for_everyone()
    return final


def load_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """Load a checkpoint's safetensors into ``model`` (tied weights may be absent)."""
    files = sorted(ckpt.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"checkpoint {ckpt} has no *.safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    if getattr(model.config, "tie_word_embeddings", False):
        tied |= {"lm_head.weight"}
    if unexpected or set(missing) - tied:
        raise RuntimeError(
            f"checkpoint {ckpt} does not match the configured model: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}; resume with the same model.* config"
        )


def read_trainer_state(ckpt: Path) -> dict:
    """The ``trainer_state.json`` of a checkpoint (step, λ, the resolved config)."""
    return json.loads((Path(ckpt) / TRAINER_STATE).read_text())


def load_checkpoint(accelerator: Accelerator, model: torch.nn.Module, ckpt: Path) -> dict:
    """Restore weights, optimizer, scheduler and RNG states; returns ``trainer_state.json``."""
    load_weights(accelerator.unwrap_model(model), ckpt)
    accelerator.load_state(str(ckpt / STATE_DIR))
    return read_trainer_state(ckpt)
