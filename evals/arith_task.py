"""The embedded arithmetic task: held-out generated problems, scored like GSM8K.

:mod:`ternlab.train.arith_data` generates the default training data. The eval task
draws problems from the same generator with a different seed and drops every
problem whose question text is also in the training set, so a model is scored
only on problems it has not seen. The prompt (``Question: ...\\nAnswer:``), the
strict (``#### n``) and flexible (last number) filters and the exact-match metric
are lm-eval's GSM8K ones, so a tiny model trained on this data for a few minutes
on a CPU shows a measurable exact-match score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ternlab.train.arith_data import ArithExample, generate

TASK_NAME = "ternlab_arith"
#: The training default (conf/data/arith.yaml) uses seed 1234; evaluation uses another.
EVAL_SEED = 20240917


@dataclass(frozen=True)
class ArithSplit:
    """Which problems the eval holds out: its own seed, and the training set to exclude."""

    num_examples: int = 200
    seed: int = EVAL_SEED
    max_value: int = 50
    train_num_examples: int = 20000
    train_seed: int = 1234
    train_max_value: int = 50


def heldout_examples(split: ArithSplit) -> list[ArithExample]:
    """``split.num_examples`` problems, none of whose questions is in the training set."""
    if split.seed == split.train_seed:
        raise ValueError(
            f"arith eval: seed {split.seed} equals the training seed; the eval set would be "
            "the training set. Choose another --arith-seed"
        )
    train = generate(split.train_num_examples, split.train_seed, split.train_max_value)
    seen = {ex.question for ex in train}
    out: list[ArithExample] = []
    n = split.num_examples
    while len(out) < split.num_examples:
        # Draw more than needed; the generator is deterministic, so a larger draw extends it.
        cand = generate(2 * n + 16, split.seed, split.max_value)
        out = [ex for ex in cand if ex.question not in seen][: split.num_examples]
        n *= 2
        if n > 1_000_000:
            raise ValueError(
                "arith eval: cannot find enough problems outside the training set; "
                "lower --arith-n or raise max_value"
            )
    return out


def heldout_texts(split: ArithSplit) -> list[str]:
    """The held-out problems as training-format documents (for perplexity)."""
    return [ex.text() for ex in heldout_examples(split)]


def _dataset(split: ArithSplit):
    from datasets import Dataset, DatasetDict

    rows = [
        {"question": ex.question, "answer": ex.answer, "result": ex.result}
        for ex in heldout_examples(split)
    ]
    return DatasetDict({"test": Dataset.from_list(rows)})


def arith_config(split: ArithSplit | None = None, max_gen_toks: int = 96) -> dict[str, Any]:
    """The lm-eval task config: GSM8K's prompt, filters and metric on held-out problems."""
    from ternlab.evals.gsm8k import shipped_config

    split = split or ArithSplit()
    gsm = shipped_config("gsm8k")
    return {
        "task": TASK_NAME,
        # lm-eval calls custom_dataset(**metadata, **dataset_kwargs); the split is bound here.
        "custom_dataset": lambda **_: _dataset(split),
        "output_type": "generate_until",
        "test_split": "test",
        "doc_to_text": gsm["doc_to_text"],
        "doc_to_target": gsm["doc_to_target"],
        "num_fewshot": 0,  # the model was trained on this format; no examples needed
        "metric_list": gsm["metric_list"],
        "filter_list": gsm["filter_list"],
        "generation_kwargs": {
            # A trained model ends an answer with EOS; a blank line or a new question also stops.
            "until": ["Question:", "\n\n"],
            "do_sample": False,
            "temperature": 0.0,
            "max_gen_toks": max_gen_toks,
        },
        "repeats": 1,
        "metadata": {
            "version": 1.0,
            "n": split.num_examples,
            "seed": split.seed,
            "max_value": split.max_value,
            "excluded_train": [split.train_num_examples, split.train_seed, split.train_max_value],
        },
    }
