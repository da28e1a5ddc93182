"""Knowledge distillation from a frozen full-precision teacher (``conf/distill/*.yaml``).

The student's loss becomes

    ce_weight · CE(student, next token)
    + kl_weight · T² · KL(softmax(teacher / T) ‖ softmax(student / T))       (every position)
    + hidden_weight · MSE(student hidden, teacher hidden)                     (``layers``)
    + attn_weight · Σ_{Q,K,V} KL(rel_teacher ‖ rel_student)                   (``layers``)

where ``rel = softmax(A Aᵀ / sqrt(d_r))`` over the causal past, per relation head,
for ``A`` the output of the layer's q/k/v projection split into ``relation_heads``
heads: the multi-head attention relation distillation of MiniLM-v2 that BitDistill
uses. The teacher runs under ``torch.no_grad`` with ``requires_grad`` off: no
gradient ever reaches it. The usual teacher is the FP16 twin of the same config
(``quant=none``), trained first.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ternlab.train.checkpoint import latest_checkpoint
from ternlab.train.config import DistillConfig

_PROJ = ("q_proj", "k_proj", "v_proj")


def resolve_teacher(spec: str) -> str:
    """A checkpoint folder for a run folder or checkpoint folder; anything else is a Hub id."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return str(path)
        ckpt = latest_checkpoint(path)
        if ckpt is not None:
            return str(ckpt)
        raise FileNotFoundError(
            f"distill.teacher: {spec!r} has neither a config.json nor checkpoints/latest; give "
            "a checkpoint folder, a ternlab run folder or a Hugging Face Hub id"
        )
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise FileNotFoundError(
            f"distill.teacher: no model folder at {spec!r}; give a checkpoint folder, a ternlab "
            "run folder or a Hugging Face Hub id (org/name)"
        )
    return spec


def load_teacher(cfg: DistillConfig, vocab_size: int, device: torch.device) -> nn.Module:
    """The frozen teacher in float32 on ``device``; its vocabulary must be the student's."""
    from transformers import AutoModelForCausalLM

    where = resolve_teacher(str(cfg.teacher))
    teacher = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32)
    if teacher.config.vocab_size != vocab_size:
        raise ValueError(
            f"distill.teacher: {where} has a vocabulary of {teacher.config.vocab_size} tokens, "
            f"the student {vocab_size}; distil from a model trained on the same tokenizer "
            "(e.g. the quant=none twin of this config)"
        )
    teacher.eval().requires_grad_(False)
    return teacher.to(device)


def _decoder_layers(model: nn.Module, what: str) -> nn.ModuleList:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            f"distill: the {what} has no model.layers; attention/hidden terms need one"
        )
    return layers


@contextmanager
def _capture_qkv(model: nn.Module, layers: list[int], what: str):
    """Record the q/k/v projection outputs of ``layers`` during a forward pass."""
    stack = _decoder_layers(model, what)
    store: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for i in layers:
        attn = stack[i].self_attn
        for p in _PROJ:

            def hook(_m, _inp, out, key=(i, p)):
                store[key] = out

            handles.append(getattr(attn, p).register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def relation_kl(s: torch.Tensor, t: torch.Tensor, heads: int) -> torch.Tensor:
    """KL(teacher relation ‖ student relation) of ``[B, L, D]`` states, mean over heads and rows.

    Each state is split into ``heads`` relation heads of ``D / heads`` values; the relation
    of a head is ``softmax(A Aᵀ / sqrt(d_r))`` over the causal past (a row sees itself and
    earlier positions only). Student and teacher may have different ``D``.
    """

    def rel(a: torch.Tensor) -> torch.Tensor:
        b, n, d = a.shape
        if d % heads:
            raise ValueError(f"distill.relation_heads={heads} does not divide a state of {d}")
        a = a.float().reshape(b, n, heads, d // heads).transpose(1, 2)
        scores = a @ a.transpose(-1, -2) / (d // heads) ** 0.5
        mask = torch.ones(n, n, dtype=torch.bool, device=a.device).tril()
        return F.log_softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)

    ls, lt = rel(s), rel(t)
    mask = torch.ones_like(ls, dtype=torch.bool).tril()  # masked entries are exp(-inf) = 0
    kl = torch.where(mask, lt.exp() * (lt - ls), torch.zeros_like(ls)).sum(-1)
    return kl.mean()


def logits_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``, summed over the vocabulary."""
    t = temperature
    ls = F.log_softmax(student.float() / t, dim=-1)
    lt = F.log_softmax(teacher.float() / t, dim=-1)
    return F.kl_div(ls, lt, log_target=True, reduction="none").sum(-1).mean() * (t * t)


class Distiller:
    """Computes the distillation loss of a student batch against the frozen teacher."""

    def __init__(self, cfg: DistillConfig, teacher: nn.Module, student_heads: int) -> None:
        self.cfg, self.teacher = cfg, teacher
        self.heads = cfg.relation_heads or student_heads
        self.parts: dict[str, float] = {}

    def loss(self, student: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The combined loss of ``student`` on ``x`` (``parts`` keeps each term, detached)."""
        c = self.cfg
        hidden, attn = c.hidden_weight > 0, c.attn_weight > 0
        layers = list(c.layers) if (hidden or attn) else []
        inner = getattr(student, "module", student)  # DDP-wrapped or not
        with _capture_qkv(inner, layers if attn else [], "student") as s_qkv:
            out = student(input_ids=x, labels=x, use_cache=False, output_hidden_states=hidden)
        with (
            torch.no_grad(),
            _capture_qkv(self.teacher, layers if attn else [], "teacher") as t_qkv,
        ):
            ref = self.teacher(input_ids=x, use_cache=False, output_hidden_states=hidden)
        parts = {"ce": out.loss, "kl": logits_kl(out.logits, ref.logits, c.temperature)}
        total = c.ce_weight * parts["ce"] + c.kl_weight * parts["kl"]
        if hidden:
            n = len(out.hidden_states) - 1  # entry i + 1 is the output of decoder layer i
            parts["hidden"] = sum(
                F.mse_loss(
                    out.hidden_states[i % n + 1].float(), ref.hidden_states[i % n + 1].float()
                )
                for i in layers
            )
            total = total + c.hidden_weight * parts["hidden"]
        if attn:
            parts["attn"] = sum(relation_kl(s_qkv[k], t_qkv[k], self.heads) for k in s_qkv) / len(
                layers
            )
            total = total + c.attn_weight * parts["attn"]
        self.parts = {k: float(v.detach()) for k, v in parts.items()}
        return total
