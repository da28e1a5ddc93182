"""One model, two ways to run it: a GGUF file on the C++ engine, or a checkpoint in PyTorch.

A *model path* is either a ``.gguf`` file (run by :class:`ternlab.inference.engine.Engine`)
or a ternlab checkpoint folder (a run folder, its ``checkpoints/latest`` pointer or a
``step-*`` folder), run in PyTorch with ternlab's ``BitLinear`` for ternary models
(:func:`ternlab.export.torch_model.load_torch_model`). Both expose the same small
:class:`Scorer` interface (tokens in, logits out) for perplexity, and both become
lm-eval models through :func:`lm_eval_model`: ``ternlab`` for GGUF, lm-eval's own
``hf`` (``HFLM``) for checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np


def is_gguf(path: str | Path) -> bool:
    """Whether ``path`` names a GGUF file (by its magic bytes, else its extension)."""
    p = Path(path)
    if p.is_file():
        with open(p, "rb") as f:
            return f.read(4) == b"GGUF"
    return p.suffix.lower() == ".gguf"


def checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint folder a run folder / ``latest`` pointer / checkpoint names."""
    from ternlab.export.source import resolve_checkpoint

    ckpt = resolve_checkpoint(path)
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: neither a GGUF file nor a ternlab checkpoint (no config.json); give a "
            "model.gguf, a run folder or <run>/checkpoints/step-NNNNNNNN"
        )
    return ckpt


class Scorer(Protocol):
    """What perplexity needs from a model."""

    name: str
    prefix_token: int  # conditions the first token (BOS, else EOS), as lm-eval's models
    max_length: int  # tokens per forward pass

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, no BOS added."""

    def logits(self, ids: list[int]) -> np.ndarray:
        """``[len(ids), n_vocab]`` float logits of a fresh context."""


class EngineScorer:
    """A GGUF file on the C++ engine."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        from ternlab.inference.engine import Engine

        self.engine = Engine(path, threads=threads)
        self.name = f"engine:{Path(path).name}"
        bos = self.engine.bos_id
        self.prefix_token = bos if bos is not None else self.engine.eos_id
        self.max_length = self.engine.n_ctx

    def encode(self, text: str) -> list[int]:
        return self.engine.encode(text, add_bos=False)

    def logits(self, ids: list[int]) -> np.ndarray:
        return self.engine.logits(ids)


class TorchScorer:
    """A checkpoint in PyTorch (float32; ternary layers are ternlab BitLinear)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import torch
        from transformers import AutoTokenizer

        from ternlab.export.torch_model import load_torch_model

        if threads:
            torch.set_num_threads(int(threads))
        ckpt = checkpoint_dir(path)
        self.model = load_torch_model(ckpt)
        # Training starts every document with BOS, and the GGUF export says add_bos_token
        # whenever there is a BOS id: the PyTorch side prepends it the same way.
        self.tokenizer = AutoTokenizer.from_pretrained(str(ckpt))
        if self.tokenizer.bos_token_id is not None:
            self.tokenizer = AutoTokenizer.from_pretrained(str(ckpt), add_bos_token=True)
        self.name = f"torch:{ckpt.name}"
        bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        self.prefix_token = bos if bos is not None else eos
        self.max_length = int(self.model.config.max_position_embeddings)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def logits(self, ids: list[int]) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.model(torch.tensor([ids], dtype=torch.long)).logits[0]
        return out.float().numpy()


def open_scorer(path: str | Path, threads: int | None = None) -> Scorer:
    """The scorer for a GGUF file or a checkpoint."""
    return EngineScorer(path, threads) if is_gguf(path) else TorchScorer(path, threads)


def lm_eval_model(path: str | Path, threads: int | None = None, batch_size: int = 8) -> Any:
    """An lm-eval model: ``ternlab`` (engine) for GGUF, lm-eval's ``hf`` for checkpoints."""
    if is_gguf(path):
        from ternlab.evals.lm_eval_model import TernlabLM

        return TernlabLM(path=str(path), threads=threads)
    from lm_eval.models.huggingface import HFLM

    scorer = TorchScorer(path, threads)
    # HFLM takes a model object: ternary layers stay ternlab's BitLinear (no torch.compile).
    return HFLM(
        pretrained=scorer.model,
        tokenizer=scorer.tokenizer,
        batch_size=batch_size,
        device="cpu",
        add_bos_token=scorer.tokenizer.bos_token_id is not None or None,
    )
