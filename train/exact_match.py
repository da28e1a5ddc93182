"""Exact match on held-out arithmetic problems at the end of a ``data=arith`` run (for sweeps).

``trainer.exact_match_examples`` problems are drawn like ``ternlab eval arith`` does
(another seed, none of the training questions), answered greedily in PyTorch from
the prompt ``Question: ...\\nAnswer:`` and scored strictly: the integer after ``####``
must equal the true result.
"""

from __future__ import annotations

import torch

from ternlab.train.arith_data import extract_answer
from ternlab.train.config import TrainConfig

MAX_NEW_TOKENS = 64


@torch.no_grad()
def arith_exact_match(model, tokenizer, cfg: TrainConfig) -> dict[str, float | int]:
    """``{"exact_match": fraction, "exact_match_n": problems}`` of greedy answers."""
    from ternlab.evals.arith_task import ArithSplit, heldout_examples

    a = cfg.data.arith
    split = ArithSplit(
        num_examples=cfg.trainer.exact_match_examples,
        max_value=a.max_value,
        train_num_examples=a.num_examples,
        train_seed=a.seed,
        train_max_value=a.max_value,
    )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    right = 0
    examples = heldout_examples(split)
    for ex in examples:
        ids = (
            bos
            + tokenizer(f"Question: {ex.question}\nAnswer:", add_special_tokens=False)["input_ids"]
        )
        x = torch.tensor([ids], device=device)
        out = model.generate(
            x,
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        text = tokenizer.decode(out[0, len(ids) :].tolist(), skip_special_tokens=True)
        text = text.split("Question:")[0].split("\n\n")[0]
        right += extract_answer(text) == ex.result
    model.train(was_training)
    return {"exact_match": right / len(examples), "exact_match_n": len(examples)}
