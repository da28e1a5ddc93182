"""``ternlab eval ...`` and ``ternlab demo``: register with :func:`add_eval_command` and
:func:`add_demo_command`.

A model argument is a GGUF file (run on the C++ engine through lm-eval model
``ternlab``) or a ternlab checkpoint (run in PyTorch through lm-eval's ``hf``).
Errors end the command with a one-line ``error: ...`` on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

DEMO_HELP = """\
The README's main job in one command: train the `small` ternary model and its FP16
twin on the embedded arithmetic data, export both to GGUF, benchmark and evaluate
them with the same suite, and write the comparison report (Markdown, JSON, PNG).
About 20 minutes on 2 CPU cores with the defaults; --preset tiny --steps 50 for a
quick look (tiny needs --override model.hidden_size=128 model.intermediate_size=256
to export to I2_S).
"""


class FMT(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults, except the ``None`` of options without one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, []) or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def _guard(func):
    def run(args: argparse.Namespace) -> int:
        try:
            _resolve_hub_ids(args)
            return func(args)
        except (FileNotFoundError, ValueError, KeyError, RuntimeError, PermissionError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1

    return run


def _resolve_hub_ids(args: argparse.Namespace) -> None:
    """Model arguments that are Hub ids (owner/name) become their downloaded, cached folder."""
    from ternlab.hub import resolve

    for key in ("model", "baseline", "model_checkpoint", "baseline_checkpoint", "checkpoint"):
        value = getattr(args, key, None)
        if isinstance(value, str) and value and not Path(value).exists():
            setattr(args, key, str(_one_gguf(resolve(value, f"ternlab eval {key}"))))


def _one_gguf(folder: Path) -> Path:
    """A downloaded GGUF repository's single .gguf file; a checkpoint folder as is."""
    ggufs = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
    return ggufs[0] if len(ggufs) == 1 and not (folder / "config.json").is_file() else folder


def _command_line() -> str:
    return "ternlab " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "ternlab"


# ------------------------------------------------------------------ options
def _threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--threads", type=int, default=1, help="CPU threads, every backend")


def _gsm8k_args(p: argparse.ArgumentParser, default: str | None) -> None:
    g = p.add_argument_group("GSM8K")
    g.add_argument(
        "--gsm8k-data",
        default=default,
        metavar="hub|DIR",
        help="'hub' (lm-eval's openai/gsm8k download) or a folder with train.jsonl and "
        "test.jsonl (offline)" + ("" if default else "; GSM8K is skipped without it"),
    )
    g.add_argument(
        "--gsm8k-variant",
        choices=("gsm8k", "gsm8k-cot"),
        default="gsm8k",
        help="lm-eval's gsm8k (5-shot) or gsm8k_cot (8-shot chain of thought)",
    )
    g.add_argument("--gsm8k-limit", type=int, default=None, help="score the first N problems")
    g.add_argument(
        "--gsm8k-fewshot",
        type=int,
        default=None,
        help="few-shot examples (default: the task's own)",
    )


def _suite_args(p: argparse.ArgumentParser) -> None:
    _threads(p)
    g = p.add_argument_group("arithmetic task")
    g.add_argument("--arith-n", type=int, default=200, help="held-out problems to score")
    g.add_argument("--arith-seed", type=int, default=None, help="eval seed (default: ternlab's)")
    g.add_argument(
        "--train-examples",
        type=int,
        default=20000,
        help="size of the training set to exclude (data.arith.num_examples)",
    )
    g.add_argument(
        "--train-seed",
        type=int,
        default=1234,
        help="seed of the training set to exclude (data.arith.seed)",
    )
    g.add_argument("--max-gen-toks", type=int, default=96, help="generation length limit")
    _gsm8k_args(p, None)
    g = p.add_argument_group("perplexity")
    g.add_argument("--ppl-docs", type=int, default=100, help="held-out arithmetic documents")
    g.add_argument(
        "--ppl-text",
        default=None,
        metavar="FILE",
        help="also a plain-text file, e.g. WikiText-2 test.txt",
    )
    g.add_argument("--ppl-max-tokens", type=int, default=4096, help="tokens scored per text")
    g = p.add_argument_group("speed")
    g.add_argument("--n-prompt", type=int, default=64, help="prefill benchmark tokens")
    g.add_argument("--n-gen", type=int, default=64, help="decode benchmark tokens")
    g.add_argument("--repetitions", type=int, default=3, help="timed runs (median)")


def _suite(args: argparse.Namespace):
    from ternlab.evals.arith_task import EVAL_SEED, ArithSplit
    from ternlab.evals.suite import SuiteConfig

    return SuiteConfig(
        threads=args.threads,
        arith=ArithSplit(
            num_examples=args.arith_n,
            seed=args.arith_seed if args.arith_seed is not None else EVAL_SEED,
            train_num_examples=args.train_examples,
            train_seed=args.train_seed,
        ),
        max_gen_toks=args.max_gen_toks,
        gsm8k_data=args.gsm8k_data,
        gsm8k_variant=args.gsm8k_variant,
        gsm8k_limit=args.gsm8k_limit,
        gsm8k_fewshot=args.gsm8k_fewshot,
        ppl_arith_docs=args.ppl_docs,
        ppl_text=args.ppl_text,
        ppl_max_tokens=args.ppl_max_tokens,
        n_prompt=args.n_prompt,
        n_gen=args.n_gen,
        repetitions=args.repetitions,
    )


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ commands
def _cmd_compare(args: argparse.Namespace) -> int:
    from ternlab.evals.compare import compare

    rep, files = compare(
        args.baseline,
        args.model,
        _suite(args),
        args.output,
        [_command_line()],
        baseline_checkpoint=args.baseline_checkpoint,
        model_checkpoint=args.model_checkpoint,
        labels=(args.baseline_label, args.model_label),
        progress=_progress,
    )
    print((Path(args.output) / "report.md").read_text())
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from ternlab.evals import report
    from ternlab.evals.suite import run_suite

    suite = _suite(args)
    res = run_suite(args.model, suite, args.label, args.checkpoint, _progress)
    rep = report.build([res], suite.to_dict(), [_command_line()])
    files = report.write(rep, args.output)
    print((Path(args.output) / "report.md").read_text())
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


def _cmd_gsm8k(args: argparse.Namespace) -> int:
    from ternlab.evals.backends import lm_eval_model
    from ternlab.evals.gsm8k import gsm8k_config
    from ternlab.evals.quality import run_tasks

    task = gsm8k_config(
        args.gsm8k_data, args.gsm8k_variant, args.gsm8k_fewshot, max_gen_toks=args.max_gen_toks
    )
    res = run_tasks(lm_eval_model(args.model, args.threads), [task], limit=args.gsm8k_limit)
    _emit(res, args.output)
    return 0


def _cmd_arith(args: argparse.Namespace) -> int:
    from ternlab.evals.backends import lm_eval_model
    from ternlab.evals.quality import run_tasks
    from ternlab.evals.suite import task_configs

    suite = _suite(args)
    res = run_tasks(lm_eval_model(args.model, args.threads), task_configs(suite)[:1])
    _emit(res, args.output)
    return 0


def _cmd_ppl(args: argparse.Namespace) -> int:
    from ternlab.evals.suite import run_perplexity

    _emit(run_perplexity(args.model, _suite(args), args.checkpoint), args.output)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from ternlab.evals.sysbench import measure

    res = measure(args.model, args.n_prompt, args.n_gen, args.threads, args.repetitions)
    _emit(res, args.output)
    return 0


def _cmd_lm_eval(args: argparse.Namespace) -> int:
    from ternlab.evals.lm_eval_cli import main

    return main(args.lm_eval_args)


def _emit(res: dict, output: str | None) -> None:
    text = json.dumps(res, indent=2, default=str)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text + "\n")
        print(f"wrote {output}", file=sys.stderr)
    print(text)


# ------------------------------------------------------------------ parsers
def add_eval_command(sub: argparse._SubParsersAction) -> None:
    """Add ``ternlab eval {compare,run,gsm8k,arith,ppl,bench,lm-eval}``."""
    p = sub.add_parser(
        "eval",
        help="evaluate models: quality, perplexity, speed, memory, energy; FP16 vs ternary",
        description="Evaluate GGUF files (C++ engine) or checkpoints (PyTorch). See docs/evals.md.",
    )
    esub = p.add_subparsers(title="eval commands", metavar="EVAL")
    p.set_defaults(func=lambda _a: (p.print_help(), 0)[1])

    c = esub.add_parser(
        "compare",
        formatter_class=FMT,
        help="run a baseline and a ternary model through one suite; one report",
        description="Both models go through the same suite; the report "
        "(report.md, report.json, PNG plots) compares them.",
    )
    c.add_argument("--baseline", required=True, help="the FP16 model (GGUF or checkpoint)")
    c.add_argument("--model", required=True, help="the ternary model (GGUF or checkpoint)")
    c.add_argument(
        "--baseline-checkpoint",
        help="checkpoint of the baseline GGUF (perplexity cross-check in PyTorch)",
    )
    c.add_argument("--model-checkpoint", help="checkpoint of the ternary GGUF (cross-check)")
    c.add_argument("--baseline-label", default="fp16")
    c.add_argument("--model-label", default="ternary")
    c.add_argument("-o", "--output", default="eval-report", help="report folder")
    _suite_args(c)
    c.set_defaults(func=_guard(_cmd_compare))

    r = esub.add_parser("run", formatter_class=FMT, help="the whole suite on one model")
    r.add_argument("model", help="GGUF file or checkpoint")
    r.add_argument("--checkpoint", help="checkpoint of a GGUF model (perplexity cross-check)")
    r.add_argument("--label", default="model")
    r.add_argument("-o", "--output", default="eval-report", help="report folder")
    _suite_args(r)
    r.set_defaults(func=_guard(_cmd_run))

    g = esub.add_parser(
        "gsm8k",
        formatter_class=FMT,
        help="GSM8K exact match (strict and flexible) with lm-eval's task",
    )
    g.add_argument("model", help="GGUF file or checkpoint")
    _threads(g)
    _gsm8k_args(g, "hub")
    g.add_argument(
        "--max-gen-toks",
        type=int,
        default=None,
        help="generation length limit (default: the model's, 256)",
    )
    g.add_argument("-o", "--output", help="also write the JSON here")
    g.set_defaults(func=_guard(_cmd_gsm8k))

    a = esub.add_parser(
        "arith", formatter_class=FMT, help="exact match on held-out generated arithmetic problems"
    )
    a.add_argument("model", help="GGUF file or checkpoint")
    _suite_args(a)
    a.add_argument("-o", "--output", help="also write the JSON here")
    a.set_defaults(func=_guard(_cmd_arith))

    pp = esub.add_parser(
        "ppl", formatter_class=FMT, help="perplexity on held-out arithmetic text and --ppl-text"
    )
    pp.add_argument("model", help="GGUF file or checkpoint")
    pp.add_argument("--checkpoint", help="also score this checkpoint in PyTorch and compare")
    _suite_args(pp)
    pp.add_argument("-o", "--output", help="also write the JSON here")
    pp.set_defaults(func=_guard(_cmd_ppl))

    b = esub.add_parser(
        "bench",
        formatter_class=FMT,
        help="prefill/decode tokens/s, ms/token, peak RSS, size, energy",
    )
    b.add_argument("model", help="GGUF file or checkpoint")
    _threads(b)
    b.add_argument("--n-prompt", type=int, default=64, help="prefill tokens")
    b.add_argument("--n-gen", type=int, default=64, help="decode tokens")
    b.add_argument("--repetitions", type=int, default=3, help="timed runs (median)")
    b.add_argument("-o", "--output", help="also write the JSON here")
    b.set_defaults(func=_guard(_cmd_bench))

    le = esub.add_parser(
        "lm-eval",
        help="lm-eval's own command line, with --model ternlab registered; --help for its options",
        add_help=False,
        prefix_chars="\0",  # every argument is lm-eval's
    )
    le.add_argument(
        "lm_eval_args",
        nargs=argparse.REMAINDER,
        help="e.g. run --model ternlab --model_args path=m.gguf --tasks gsm8k",
    )
    le.set_defaults(func=_guard(_cmd_lm_eval))


def _cmd_demo(args: argparse.Namespace) -> int:
    from ternlab.evals.pipeline import DemoConfig, run_demo

    cfg = DemoConfig(
        out_dir=args.output,
        preset=args.preset,
        steps=args.steps,
        ternary_type=args.ternary_type,
        train_examples=args.train_examples,
        threads=args.threads,
        eval_n=args.eval_n,
        ppl_docs=args.ppl_docs,
        ppl_text=args.ppl_text,
        ppl_max_tokens=args.ppl_max_tokens,
        max_gen_toks=args.max_gen_toks,
        gsm8k_data=args.gsm8k_data,
        gsm8k_variant=args.gsm8k_variant,
        gsm8k_limit=args.gsm8k_limit,
        gsm8k_fewshot=args.gsm8k_fewshot,
        n_prompt=args.n_prompt,
        n_gen=args.n_gen,
        repetitions=args.repetitions,
        overrides=list(args.override),
        progress=not args.quiet,
    )
    res = run_demo(cfg, _command_line())
    print((res.report_dir / "report.md").read_text())
    print(f"done in {res.seconds:.0f} s; report in {res.report_dir}")
    return 0


def add_demo_command(sub: argparse._SubParsersAction) -> None:
    """Add ``ternlab demo``: train both models, export, evaluate, report."""
    p = sub.add_parser(
        "demo",
        formatter_class=FMT,
        description=DEMO_HELP,
        help="train a ternary model and its FP16 twin, export, evaluate, compare",
    )
    p.add_argument("-o", "--output", default="runs/demo", help="folder for everything")
    p.add_argument("--preset", default="small", help="model preset (conf/model/*.yaml)")
    p.add_argument("--steps", type=int, default=1000, help="training steps of each model")
    p.add_argument("--ternary-type", choices=("i2_s", "tq2_0", "tq1_0"), default="i2_s")
    p.add_argument(
        "--train-examples",
        type=int,
        default=20000,
        help="generated training problems (data.arith.num_examples)",
    )
    _threads(p)
    p.add_argument("--eval-n", type=int, default=200, help="held-out problems for exact match")
    p.add_argument("--ppl-docs", type=int, default=100, help="held-out problems for perplexity")
    p.add_argument("--ppl-text", default=None, metavar="FILE", help="also this text's perplexity")
    p.add_argument("--ppl-max-tokens", type=int, default=4096, help="tokens scored per text")
    p.add_argument("--max-gen-toks", type=int, default=96, help="generation length limit")
    _gsm8k_args(p, None)
    p.add_argument("--n-prompt", type=int, default=64, help="prefill benchmark tokens")
    p.add_argument("--n-gen", type=int, default=64, help="decode benchmark tokens")
    p.add_argument("--repetitions", type=int, default=3, help="timed benchmark runs")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Hydra training override for both runs (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_guard(_cmd_demo))
