"""GSM8K (local JSONL / hub config) and the held-out arithmetic task, built by lm-eval."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from ternlab.evals.arith_task import TASK_NAME, ArithSplit, arith_config, heldout_examples
from ternlab.evals.gsm8k import gsm8k_config, task_manager
from ternlab.train.arith_data import generate

GSM8K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k"
needs_gsm8k = pytest.mark.skipif(
    not (GSM8K / "test.jsonl").is_file(), reason=f"GSM8K JSONL not found at {GSM8K}"
)


def _task(cfg: dict):
    return task_manager().load([cfg])["tasks"][cfg["task"]]


def test_heldout_problems_are_not_in_training_set():
    split = ArithSplit(num_examples=300, train_num_examples=2000)
    held = heldout_examples(split)
    train = {ex.question for ex in generate(2000, 1234, 50)}
    assert len(held) == 300
    assert not {ex.question for ex in held} & train
    # Deterministic, and the same generator the training data comes from.
    assert heldout_examples(split) == held
    assert all(ex.answer.endswith(f"#### {ex.result}") for ex in held)


def test_heldout_excludes_overlap_that_exists():
    """Small operands make collisions certain: the filter must actually remove some."""
    split = ArithSplit(num_examples=200, max_value=3, train_num_examples=200, train_max_value=3)
    raw = generate(200, split.seed, 3)
    train = {ex.question for ex in generate(200, 1234, 3)}
    assert any(ex.question in train for ex in raw)
    assert not {ex.question for ex in heldout_examples(split)} & train


def test_eval_seed_must_differ_from_training_seed():
    with pytest.raises(ValueError, match="training seed"):
        heldout_examples(ArithSplit(seed=1234, train_seed=1234))


def test_arith_task_through_lm_eval():
    task = _task(arith_config(ArithSplit(num_examples=5, train_num_examples=100)))
    docs = list(task.test_docs())
    assert len(docs) == 5 and task.config.task == TASK_NAME
    task.build_all_requests(limit=2, rank=0, world_size=1)
    ctx, gen = task.instances[0].args
    assert ctx == f"Question: {docs[0]['question']}\nAnswer:"  # GSM8K's prompt, zero-shot
    assert "Question:" in gen["until"] and gen["max_gen_toks"] == 96
    assert task.doc_to_target(docs[0]).endswith(f"#### {docs[0]['result']}")


@needs_gsm8k
@pytest.mark.parametrize(("variant", "shots"), [("gsm8k", 5), ("gsm8k-cot", 8)])
def test_gsm8k_local_jsonl(variant, shots, tmp_path):
    cfg = gsm8k_config(GSM8K, variant, cache_dir=tmp_path)
    assert cfg["dataset_path"] == "json" and cfg["num_fewshot"] == shots
    task = _task(cfg)
    docs = list(task.test_docs())
    assert len(docs) == 1319
    task.build_all_requests(limit=1, rank=0, world_size=1)
    prompt = task.instances[0].args[0]
    q = "Question:" if variant == "gsm8k" else "Q:"
    assert prompt.count(q) == shots + 1  # few-shot examples + the problem itself
    assert prompt.endswith(f"{docs[0]['question']}\n" + ("Answer:" if q == "Question:" else "A:"))


def test_gsm8k_hub_config_is_lm_evals():
    cfg = gsm8k_config("hub")
    assert cfg["dataset_path"] == "openai/gsm8k" and cfg["dataset_name"] == "main"
    assert (
        gsm8k_config("hub", num_fewshot=0, max_gen_toks=32)["generation_kwargs"]["max_gen_toks"]
        == 32
    )


def test_gsm8k_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="test.jsonl"):
        gsm8k_config(tmp_path)
    with pytest.raises(ValueError, match="gsm8k-cot"):
        gsm8k_config("hub", "gsm9k")
