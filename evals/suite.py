"""The evaluation suite: quality, perplexity and systems metrics of one model.

Every model of a comparison goes through the same :class:`SuiteConfig`: the held-out
arithmetic task (exact match), GSM8K when asked, perplexity on the held-out
arithmetic text and on a text file when given (engine and PyTorch both, when the
model's checkpoint is known, to show that they agree), and the systems benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ternlab.evals.arith_task import ArithSplit

Progress = Callable[[str], None]


@dataclass
class SuiteConfig:
    """What to measure, the same for every model of a comparison."""

    threads: int = 1
    arith: ArithSplit = field(default_factory=ArithSplit)
    arith_limit: int | None = None  # problems scored by the generation task (None: all)
    max_gen_toks: int = 96
    gsm8k_data: str | None = None  # None: skip; "hub" or a folder of JSONL files
    gsm8k_variant: str = "gsm8k"
    gsm8k_limit: int | None = None
    gsm8k_fewshot: int | None = None
    ppl_arith_docs: int = 100  # held-out arithmetic problems scored for perplexity
    ppl_text: str | None = None  # a plain-text file (e.g. WikiText-2 test.txt)
    ppl_max_tokens: int = 4096
    n_prompt: int = 64
    n_gen: int = 64
    repetitions: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


def _quiet(_: str) -> None:
    pass


def task_configs(cfg: SuiteConfig) -> list[dict[str, Any]]:
    """The lm-eval task configs the suite runs."""
    from ternlab.evals.arith_task import arith_config
    from ternlab.evals.gsm8k import gsm8k_config

    tasks = [arith_config(cfg.arith, cfg.max_gen_toks)]
    if cfg.gsm8k_data:
        tasks.append(
            gsm8k_config(
                cfg.gsm8k_data, cfg.gsm8k_variant, cfg.gsm8k_fewshot, max_gen_toks=cfg.max_gen_toks
            )
        )
    return tasks


def run_quality(path: str | Path, cfg: SuiteConfig) -> dict[str, Any]:
    """lm-eval tasks: the arithmetic task, and GSM8K if configured."""
    from ternlab.evals.backends import lm_eval_model
    from ternlab.evals.quality import run_tasks

    lm = lm_eval_model(path, threads=cfg.threads)
    limits = {"ternlab_arith": cfg.arith_limit, "gsm8k": cfg.gsm8k_limit}
    out: dict[str, Any] = {}
    # One evaluator call per task: each has its own --limit.
    for task in task_configs(cfg):
        name = task["task"]
        out.update(run_tasks(lm, [task], limit=limits.get(name, limits["gsm8k"])))
    return out


def run_perplexity(
    path: str | Path, cfg: SuiteConfig, checkpoint: str | Path | None = None
) -> dict[str, Any]:
    """Perplexity on the held-out arithmetic text (and ``ppl_text``), for the model and,
    when ``checkpoint`` is given, for the same weights in PyTorch."""
    from dataclasses import replace

    from ternlab.evals.arith_task import heldout_texts
    from ternlab.evals.backends import open_scorer
    from ternlab.evals.perplexity import perplexity, read_text_docs

    corpora = {"arith_heldout": heldout_texts(replace(cfg.arith, num_examples=cfg.ppl_arith_docs))}
    if cfg.ppl_text:
        text = Path(cfg.ppl_text)
        corpora[f"{text.parent.name}/{text.stem}"] = read_text_docs(text)
    scorers = {"model": open_scorer(path, cfg.threads)}
    if checkpoint is not None and str(checkpoint) != str(path):
        scorers["pytorch"] = open_scorer(checkpoint, cfg.threads)
    out: dict[str, Any] = {}
    for name, docs in corpora.items():
        res = {k: perplexity(s, docs, max_tokens=cfg.ppl_max_tokens) for k, s in scorers.items()}
        entry = res["model"].to_dict()
        if "pytorch" in res:
            entry["pytorch"] = res["pytorch"].to_dict()
            entry["rel_diff_vs_pytorch"] = abs(res["model"].ppl / res["pytorch"].ppl - 1.0)
        out[name] = entry
    return out


def run_suite(
    path: str | Path,
    cfg: SuiteConfig,
    label: str,
    checkpoint: str | Path | None = None,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Every measurement of one model, as a JSON-ready dict."""
    from ternlab.evals.backends import is_gguf
    from ternlab.evals.sysbench import measure

    progress(f"{label}: systems benchmark")
    systems = measure(path, cfg.n_prompt, cfg.n_gen, cfg.threads, cfg.repetitions)
    progress(f"{label}: perplexity")
    ppl = run_perplexity(path, cfg, checkpoint)
    progress(f"{label}: lm-eval tasks")
    quality = run_quality(path, cfg)
    return {
        "label": label,
        "path": str(path),
        "backend": "engine" if is_gguf(path) else "pytorch",
        "checkpoint": str(checkpoint) if checkpoint else None,
        "ternary": systems["energy"]["ternary_arithmetic"],
        "systems": systems,
        "perplexity": ppl,
        "tasks": quality,
    }
