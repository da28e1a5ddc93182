"""Run lm-eval tasks (GSM8K, the arithmetic task) on one model and keep what the report needs."""

from __future__ import annotations

import logging
import time
from typing import Any

#: The metric keys lm-eval reports for GSM8K-style tasks (metric,filter).
STRICT = "exact_match,strict-match"
FLEXIBLE = "exact_match,flexible-extract"


def run_tasks(
    lm: Any,
    task_configs: list[dict[str, Any]],
    limit: int | float | None = None,
    seed: int = 1234,
    max_samples_kept: int = 5,
) -> dict[str, dict[str, Any]]:
    """Evaluate ``lm`` (an lm-eval model) on ``task_configs`` with lm-eval's evaluator.

    Returns, per task: strict and flexible exact match with their standard errors,
    the number of problems, the seconds taken, and the first ``max_samples_kept``
    problems with the model's output and both extracted answers.
    """
    from lm_eval import simple_evaluate

    from ternlab.evals.gsm8k import task_manager

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    res = simple_evaluate(
        model=lm,
        tasks=task_configs,
        task_manager=task_manager(),
        limit=limit,
        log_samples=True,
        bootstrap_iters=1000,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    seconds = time.perf_counter() - t0
    out = {}
    for name, metrics in res["results"].items():
        docs = _by_doc(res["samples"].get(name, []))
        out[name] = {
            "strict_match": metrics.get(STRICT),
            "strict_match_stderr": _num(metrics.get(STRICT.replace(",", "_stderr,"))),
            "flexible_extract": metrics.get(FLEXIBLE),
            "flexible_extract_stderr": _num(metrics.get(FLEXIBLE.replace(",", "_stderr,"))),
            "n": len(docs),
            "num_fewshot": res.get("n-shot", {}).get(name),
            "seconds": seconds,
            "samples": docs[:max_samples_kept],
        }
    return out


def _num(v: Any) -> float | None:
    return v if isinstance(v, (int, float)) else None  # lm-eval writes "N/A" for n = 1


def _by_doc(samples: list[dict]) -> list[dict]:
    """One entry per problem: question, target, raw output, and per filter the
    extracted answer and its exact match (lm-eval logs one sample per filter)."""
    docs: dict[int, dict] = {}
    for s in samples:
        d = docs.setdefault(
            s["doc_id"],
            {
                "question": s.get("doc", {}).get("question"),
                "target": s.get("target"),
                "output": (s.get("resps") or [[""]])[0][0],
            },
        )
        filtered = s.get("filtered_resps")
        d[s.get("filter", "none")] = {
            "answer": filtered[0] if isinstance(filtered, list) and filtered else filtered,
            "exact_match": s.get("exact_match"),
        }
    return [docs[k] for k in sorted(docs)]
