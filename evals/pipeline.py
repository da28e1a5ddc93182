"""``ternlab demo``: the whole pipeline in one command.

1. train the ``small`` ternary model on the embedded arithmetic data,
2. train its FP16 twin (``quant=none``: same architecture, data, steps and seed),
3. export both to GGUF (the ternary one to I2_S or TQ2_0, the twin to F16),
4. benchmark, evaluate (held-out arithmetic exact match, perplexity on held-out
   arithmetic text from both the engine and PyTorch, GSM8K when asked) and
5. write the comparison report (Markdown, JSON, PNG plots).

Every size is a field of :class:`DemoConfig`, so a test runs the same code on the
``tiny`` preset with a few steps.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ternlab.evals.arith_task import ArithSplit
from ternlab.evals.suite import SuiteConfig

BASELINE_TYPE = "f16"


@dataclass
class DemoConfig:
    """Sizes and places of one demo run (defaults: the README's ``small`` run)."""

    out_dir: str = "runs/demo"
    preset: str = "small"
    steps: int = 1000
    ternary_type: str = "i2_s"  # or tq2_0 (needs rows that are multiples of 256)
    train_examples: int = 20000
    train_seed: int = 1234
    threads: int = 1
    eval_n: int = 200  # held-out problems for exact match
    ppl_docs: int = 100  # held-out problems for perplexity
    ppl_text: str | None = None
    ppl_max_tokens: int = 4096
    max_gen_toks: int = 96
    gsm8k_data: str | None = None  # None: skip GSM8K; "hub" or a JSONL folder
    gsm8k_variant: str = "gsm8k"
    gsm8k_limit: int | None = 50
    gsm8k_fewshot: int | None = None
    n_prompt: int = 64
    n_gen: int = 64
    repetitions: int = 3
    overrides: list[str] = field(default_factory=list)  # extra Hydra overrides, both runs
    progress: bool = True

    def suite(self) -> SuiteConfig:
        """The evaluation settings both models get."""
        return SuiteConfig(
            threads=self.threads,
            arith=ArithSplit(
                num_examples=self.eval_n,
                train_num_examples=self.train_examples,
                train_seed=self.train_seed,
            ),
            max_gen_toks=self.max_gen_toks,
            gsm8k_data=self.gsm8k_data,
            gsm8k_variant=self.gsm8k_variant,
            gsm8k_limit=self.gsm8k_limit,
            gsm8k_fewshot=self.gsm8k_fewshot,
            ppl_arith_docs=self.ppl_docs,
            ppl_text=self.ppl_text,
            ppl_max_tokens=self.ppl_max_tokens,
            n_prompt=self.n_prompt,
            n_gen=self.n_gen,
            repetitions=self.repetitions,
        )


@dataclass
class DemoResult:
    """Where everything went."""

    report_dir: Path
    files: list[Path]
    report: dict[str, Any]
    checkpoints: dict[str, Path]
    ggufs: dict[str, Path]
    seconds: float


def train_overrides(cfg: DemoConfig, quant: str) -> list[str]:
    """The ``ternlab train`` overrides of one of the two runs."""
    out = Path(cfg.out_dir)
    return [
        f"model={cfg.preset}",
        f"quant={quant}",
        "data=arith",
        f"data.arith.num_examples={cfg.train_examples}",
        f"data.arith.seed={cfg.train_seed}",
        f"trainer.max_steps={cfg.steps}",
        f"trainer.progress={str(cfg.progress).lower()}",
        "tracking=disabled",
        # One cache: both runs train on the same tokenizer and the same packed data.
        f"data.cache_dir={out / 'cache'}",
        f"trainer.output_dir={out / ('fp16' if quant == 'none' else 'ternary') / 'train'}",
        *cfg.overrides,
    ]


def _console(enabled: bool):
    from rich.console import Console

    return Console(stderr=True, quiet=not enabled)


def run_demo(cfg: DemoConfig, command: str | None = None) -> DemoResult:
    """Train, export, evaluate and compare; returns the report and its files.

    ``command`` (the ``ternlab demo ...`` line) heads the report's list of commands,
    followed by the equivalent individual steps.
    """
    from ternlab.evals.compare import compare
    from ternlab.export.gguf_export import export_gguf
    from ternlab.train import compose, train

    con = _console(cfg.progress)
    t0 = time.perf_counter()
    out = Path(cfg.out_dir)
    steps = 5
    ckpts: dict[str, Path] = {}
    ggufs: dict[str, Path] = {}
    commands: list[str] = [command] if command else []
    for i, (label, quant) in enumerate((("ternary", "ternary"), ("fp16", "none")), start=1):
        con.rule(f"[bold][{i}/{steps}] train the {label} model")
        ov = train_overrides(cfg, quant)
        commands.append("ternlab train " + shlex.join(ov))
        res = train(compose(ov))
        if res.checkpoint is None:
            raise RuntimeError(f"training the {label} model wrote no checkpoint ({res.output_dir})")
        ckpts[label] = res.checkpoint
        con.print(f"{label}: {res.steps} steps, val loss {res.val_loss:.4f} -> {res.checkpoint}")
    con.rule(f"[bold][3/{steps}] export to GGUF")
    for label, qtype in (("ternary", cfg.ternary_type), ("fp16", BASELINE_TYPE)):
        path = out / label / f"model-{qtype}.gguf"
        r = export_gguf(ckpts[label], path, qtype, progress=cfg.progress)
        ggufs[label] = r.path
        commands.append(f"ternlab export {shlex.quote(str(ckpts[label]))} -o {path} --type {qtype}")
        con.print(f"{label}: {r.path} ({r.arch}, {r.qtype}, {r.nbytes:,} bytes)")
    con.rule(f"[bold][4/{steps}] benchmark and evaluate (same suite for both)")
    report_dir = out / "report"
    commands.append(
        f"ternlab eval compare --baseline {ggufs['fp16']} --model {ggufs['ternary']} "
        f"--baseline-checkpoint {ckpts['fp16']} --model-checkpoint {ckpts['ternary']} "
        f"--threads {cfg.threads} -o {report_dir}"
    )
    rep, files = compare(
        ggufs["fp16"],
        ggufs["ternary"],
        cfg.suite(),
        report_dir,
        commands,
        baseline_checkpoint=ckpts["fp16"],
        model_checkpoint=ckpts["ternary"],
        progress=lambda msg: con.print(f"  {msg}"),
    )
    con.rule(f"[bold][5/{steps}] report")
    for f in files:
        con.print(f"  {f}")
    return DemoResult(report_dir, files, rep, ckpts, ggufs, time.perf_counter() - t0)
