"""Read a ternlab checkpoint folder: config, latent weights, tokenizer files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from ternlab.export.errors import ExportError
from ternlab.train.checkpoint import LATEST, latest_checkpoint

#: The Linear layers BitLinear replaces (every one but the LM head).
TERNARY_RE = re.compile(r"model\.layers\.\d+\.(self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj\.weight")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``config.json`` as a dict and the float32 state dict."""

    path: Path
    config: dict
    state: dict[str, torch.Tensor] = field(repr=False)

    @property
    def ternary(self) -> bool:
        """True for a ``quant=ternary`` run (BitLinear layers), False for the FP baseline."""
        return "quantization_config" in self.config

    @property
    def hidden_act(self) -> str:
        return str(self.config.get("hidden_act", "silu"))

    @property
    def tied(self) -> bool:
        return bool(self.config.get("tie_word_embeddings", False))

    def is_ternary_weight(self, name: str) -> bool:
        """Whether ``name`` is a weight the model quantizes to ternary."""
        return self.ternary and TERNARY_RE.fullmatch(name) is not None

    def tokenizer_json(self) -> dict:
        """``tokenizer.json`` parsed; a clear error if the checkpoint has none."""
        f = self.path / "tokenizer.json"
        if not f.is_file():
            raise ExportError(
                f"{self.path}: no tokenizer.json; GGUF files carry the tokenizer. Copy the "
                "run's tokenizer folder (tokenizer.json, tokenizer_config.json) into the checkpoint"
            )
        return json.loads(f.read_text())

    def tokenizer_config(self) -> dict:
        f = self.path / "tokenizer_config.json"
        return json.loads(f.read_text()) if f.is_file() else {}


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder ``path`` names: the folder itself, a training run's
    ``checkpoints/latest`` pointer file, or the run folder (its latest checkpoint)."""
    path = Path(path)
    if path.is_file() and path.name == LATEST:
        return path.parent / path.read_text().strip()
    if not (path / "config.json").is_file():
        return latest_checkpoint(path) or path
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load ``config.json`` and every ``*.safetensors`` of a checkpoint folder as float32.

    ``path`` may also be a run folder or its ``checkpoints/latest`` pointer.
    """
    path = resolve_checkpoint(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ExportError(
            f"{path}: no config.json; give a checkpoint folder "
            "(e.g. <output_dir>/checkpoints/step-00001000)"
        )
    config = json.loads(cfg_file.read_text())
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{path}: no *.safetensors weights in the checkpoint folder")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update({k: v.float() for k, v in load_file(f).items()})
    return Checkpoint(path, config, state)
