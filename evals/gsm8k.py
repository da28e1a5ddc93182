"""GSM8K through lm-eval's own task definitions, from the Hub or from local JSONL files.

The task configs are lm-eval's shipped YAML (``lm_eval/tasks/gsm8k/gsm8k.yaml`` and
``gsm8k-cot.yaml``): the prompt, few-shot examples, stop sequences, the strict and
flexible answer filters and the exact-match metric are theirs, untouched. The one
thing ternlab changes is where the rows come from: ``data="hub"`` keeps lm-eval's
``openai/gsm8k`` download; a folder with ``train.jsonl`` and ``test.jsonl`` (the
layout of openai/grade-school-math, which the Hub's ``main`` config mirrors) is
read with ``datasets``' ``json`` loader instead, offline.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

#: ternlab's names for lm-eval's two GSM8K variants.
VARIANTS = {"gsm8k": "gsm8k", "gsm8k-cot": "gsm8k_cot"}


def lm_eval_task_dir() -> Path:
    """The folder of lm-eval's shipped GSM8K YAML files."""
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent / "gsm8k"


@lru_cache(maxsize=1)
def task_manager():
    """A TaskManager that indexes only the GSM8K folder (the full index takes ~8 s)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False, include_path=str(lm_eval_task_dir()))


def shipped_config(task: str) -> dict[str, Any]:
    """lm-eval's config dict for ``task`` (``gsm8k`` or ``gsm8k_cot``), as its YAML says."""
    entry = task_manager().task_index.get(task)
    if entry is None or entry.cfg is None:
        raise KeyError(f"lm-eval has no task {task!r} in {lm_eval_task_dir()}")
    return dict(entry.cfg)


def local_data_files(folder: str | Path, need_train: bool) -> dict[str, str]:
    """``{"test": .../test.jsonl, "train": .../train.jsonl}`` of a local GSM8K folder."""
    folder = Path(folder).expanduser()
    files = {"test": folder / "test.jsonl"}
    if need_train:
        files["train"] = folder / "train.jsonl"
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"--gsm8k-data {folder}: missing {', '.join(missing)}; give a folder with GSM8K's "
            "train.jsonl and test.jsonl (one {question, answer} object a line), or 'hub'"
        )
    return {split: str(p) for split, p in files.items()}


def gsm8k_config(
    data: str | Path = "hub",
    variant: str = "gsm8k",
    num_fewshot: int | None = None,
    cache_dir: str | Path | None = None,
    max_gen_toks: int | None = None,
) -> dict[str, Any]:
    """The lm-eval task config of a GSM8K ``variant`` reading its rows from ``data``.

    ``data`` is ``"hub"`` (lm-eval's own ``openai/gsm8k``) or a local folder.
    ``num_fewshot`` overrides the YAML's (5 for ``gsm8k``, 8 for ``gsm8k-cot``);
    ``max_gen_toks`` the model's default generation length (256 in lm-eval's models),
    which a model with a short context needs.
    """
    if variant not in VARIANTS:
        raise ValueError(f"--variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    cfg = shipped_config(VARIANTS[variant])
    if num_fewshot is not None:
        cfg["num_fewshot"] = num_fewshot
    if max_gen_toks is not None:
        cfg["generation_kwargs"] = {**cfg["generation_kwargs"], "max_gen_toks": max_gen_toks}
    if str(data) == "hub":
        return cfg
    # The CoT variant's few-shot examples are written in its YAML; only `gsm8k` samples train.
    need_train = "fewshot_config" not in cfg and cfg.get("num_fewshot", 0) > 0
    kwargs: dict[str, Any] = {"data_files": local_data_files(data, need_train)}
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs=kwargs)
    if not need_train:
        cfg.update(training_split=None, fewshot_split=None)
    return cfg
