"""Knowledge distillation: the loss holds the KL and relation terms; only the student learns."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from transformers import BitNetConfig, BitNetForCausalLM

from ternlab.bitlinear import replace_linear
from ternlab.train import compose, train
from ternlab.train.config import ConfigError, DistillConfig
from ternlab.train.distill import Distiller, logits_kl, relation_kl, resolve_teacher


def _model(seed: int) -> BitNetForCausalLM:
    torch.manual_seed(seed)
    cfg = BitNetConfig(
        vocab_size=40,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return BitNetForCausalLM(cfg).float()


def _x() -> torch.Tensor:
    return torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(0))


def test_logits_kl_matches_the_definition():
    s, t = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    p = F.softmax(t / 2, -1)
    ref = (p * (p.log() - F.log_softmax(s / 2, -1))).sum(-1).mean() * 4
    torch.testing.assert_close(logits_kl(s, t, 2.0), ref)
    assert float(logits_kl(t, t, 2.0)) == pytest.approx(0.0, abs=1e-6)


def test_relation_kl_is_zero_for_equal_states_and_positive_otherwise():
    a = torch.randn(2, 5, 16)
    assert float(relation_kl(a, a, 4)) == pytest.approx(0.0, abs=1e-6)
    assert float(relation_kl(a, torch.randn(2, 5, 8), 4)) > 0  # widths may differ


def test_loss_is_ce_plus_weighted_kl_and_only_the_student_gets_gradients():
    teacher, student = _model(1), _model(2)
    replace_linear(student)  # ternary student, full-precision teacher
    teacher.eval().requires_grad_(False)
    cfg = DistillConfig(method="kd", teacher="x", temperature=2.0, ce_weight=0.5, kl_weight=3.0)
    x = _x()
    loss = Distiller(cfg, teacher, 4).loss(student, x)
    out = student(input_ids=x, labels=x)
    with torch.no_grad():
        t_logits = teacher(input_ids=x).logits
    ref = 0.5 * out.loss + 3.0 * logits_kl(out.logits, t_logits, 2.0)
    torch.testing.assert_close(loss, ref)
    assert float(logits_kl(out.logits.detach(), t_logits, 2.0)) > 0.01
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    grads = [p.grad for p in student.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_attention_and_hidden_terms_join_the_loss():
    teacher, student = _model(1), _model(2)
    teacher.eval().requires_grad_(False)
    x = _x()
    base = DistillConfig(method="kd", teacher="x", kl_weight=0.0)
    plain = Distiller(base, teacher, 4).loss(student, x)
    full = Distiller(
        DistillConfig(method="kd", teacher="x", kl_weight=0.0, hidden_weight=1.0, attn_weight=1.0),
        teacher,
        4,
    )
    loss = full.loss(student, x)
    assert full.parts["attn"] > 0 and full.parts["hidden"] > 0
    torch.testing.assert_close(loss, plain + full.parts["attn"] + full.parts["hidden"])
    # the twin of the student as its own teacher: every distillation term vanishes
    same = Distiller(
        DistillConfig(method="kd", teacher="x", hidden_weight=1.0, attn_weight=1.0),
        copy.deepcopy(student).requires_grad_(False),
        4,
    )
    same.loss(student, x)
    for k in ("kl", "hidden", "attn"):
        assert same.parts[k] == pytest.approx(0.0, abs=1e-5), k


def test_teacher_paths_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="distill.teacher"):
        resolve_teacher(str(tmp_path))  # a folder without a model or checkpoints
    with pytest.raises(FileNotFoundError, match="distill.teacher"):
        resolve_teacher("./missing/run")
    assert resolve_teacher("org/model") == "org/model"  # a Hub id goes to transformers


@pytest.mark.slow
def test_ternary_student_distils_from_its_fp_twin(tmp_path):
    common = [
        "model=tiny",
        "tracking=disabled",
        "data.seq_len=32",
        "data.arith.num_examples=400",
        "trainer.batch_size=4",
        "trainer.max_steps=4",
        "trainer.progress=false",
        "trainer.plot=false",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]
    fp = train(compose([*common, "quant=none", f"trainer.output_dir={tmp_path / 'fp'}"]))
    student = compose(
        [
            *common,
            "distill=bitdistill",
            f"distill.teacher={fp.output_dir}",
            f"trainer.output_dir={tmp_path / 'kd'}",
        ]
    )
    res = train(student)
    assert res.steps == 4 and res.val_loss == res.val_loss  # finite
    with pytest.raises(ConfigError, match="distill.teacher"):
        compose([*common, "distill=kl"])  # the preset needs distill.teacher
