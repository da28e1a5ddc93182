"""``ternlab run | chat | bench | serve``: register with :func:`add_inference_commands`.

Every command loads one GGUF file with :class:`~ternlab.inference.engine.Engine`. A
missing or unreadable file, or any other problem with the arguments, ends the
command with a one-line ``error: ...`` on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path


class FMT(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the ``None`` of options without one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == []:
            return action.help or ""
        return super()._get_help_string(action)


def add_inference_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``run``, ``chat``, ``bench`` and ``serve`` to the ``ternlab`` parser."""
    _add_run(sub)
    _add_chat(sub)
    _add_bench(sub)
    _add_serve(sub)


# ------------------------------------------------------------------ arguments
def _model_args(p: argparse.ArgumentParser, ctx: bool = True) -> None:
    p.add_argument("-m", "--model", required=True, metavar="GGUF", help="the model file")
    p.add_argument(
        "-t", "--threads", type=int, default=None,
        help="CPU threads (default: the usable CPUs, at most 8)",
    )  # fmt: skip
    if ctx:
        p.add_argument(
            "-c", "--ctx-size", "--ctx", type=int, default=None, metavar="N",
            help="context size in tokens (default: the model's training context)",
        )  # fmt: skip
    _layout_arg(p)


def _layout_arg(p: argparse.ArgumentParser) -> None:
    """--layout and --kv-type: how the weights and the KV cache are held in memory."""
    p.add_argument(
        "--layout", choices=("auto", "bits2", "base3"), default="auto",
        help="in-memory layout of ternary weights: bits2 (2 bits a weight), base3 (1.6 "
        "bits: 20%% fewer bytes a token), auto (the fastest on this CPU)",
    )  # fmt: skip
    p.add_argument(
        "--kv-type", choices=("f32", "f16"), default="f32",
        help="KV cache values: f32, or f16 (IEEE half: half the cache memory, logits "
        "within a small rounding of f32's)",
    )  # fmt: skip


def _sampling_args(p: argparse.ArgumentParser, n: int) -> None:
    p.add_argument("-n", "--max-tokens", type=int, default=n, help="tokens to generate at most")
    p.add_argument("--temp", type=float, default=0.8, help="temperature; 0 = greedy")
    p.add_argument("--top-k", type=int, default=40, help="keep the k most likely tokens; 0 = off")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass; 1 = off")
    p.add_argument("--seed", type=int, default=-1, help="sampling seed; -1 = random (printed)")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="generate text from a prompt with a GGUF model",
        description="Generate text after a prompt; the text streams to stdout, timings to "
        "stderr. Sampling: top-k, then top-p, then temperature (as llama.cpp).",
        formatter_class=FMT,
    )
    _model_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-p", "--prompt", help="the prompt text")
    src.add_argument("-f", "--file", help="read the prompt from this file")
    _sampling_args(p, 128)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--echo", action="store_true", help="print the prompt before the output")
    p.set_defaults(func=_guard(_cmd_run))


def _add_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chat",
        help="talk to a GGUF model (reads lines from stdin)",
        description="An interactive conversation using the model's chat template (or a "
        "plain 'User:/Assistant:' transcript when the file has none). Each stdin line is a "
        "user turn; /reset forgets the history, /exit or end of input quits.",
        formatter_class=FMT,
    )
    _model_args(p)
    p.add_argument("--system", default=None, help="a system message to start with")
    _sampling_args(p, 256)
    p.set_defaults(func=_guard(_cmd_chat))


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure prompt (pp) and generation (tg) speed, like llama-bench",
        description="pp: one batched evaluation of -p random tokens; tg: -n single-token "
        "evaluations; both from an empty cache, after one warm-up, medians of -r runs.",
        formatter_class=FMT,
    )
    p.add_argument(
        "-m", "--model", required=True, action="append", metavar="GGUF",
        help="model file (repeatable)",
    )  # fmt: skip
    p.add_argument("-p", "--n-prompt", type=int, default=128, help="prompt tokens (0 = skip pp)")
    p.add_argument("-n", "--n-gen", type=int, default=128, help="generated tokens (0 = skip tg)")
    p.add_argument("-t", "--threads", default="1", help="thread counts, comma-separated")
    p.add_argument("-r", "--repetitions", type=int, default=3, help="timed runs per test")
    p.add_argument("-o", "--output", default=None, metavar="JSON", help="also write results here")
    _layout_arg(p)
    p.set_defaults(func=_guard(_cmd_bench))


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a GGUF model over an OpenAI-compatible HTTP API",
        description="POST /v1/completions and /v1/chat/completions (log-probs, echo, "
        "token-id prompts, SSE streaming), GET /v1/models and /health. Up to --slots "
        "requests are decoded together (one batched forward pass a token), --queue more wait.",
        formatter_class=FMT,
    )
    _model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: all)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (0: any free port)")
    p.add_argument(
        "--slots", type=int, default=4,
        help="sequences decoded at once, each with its own KV cache of --ctx tokens",
    )  # fmt: skip
    p.add_argument("--queue", type=int, default=64, help="requests that may wait for a slot")
    p.add_argument(
        "--step-tokens", type=int, default=16,  # scheduler.STEP_TOKENS (tested)
        help="while sequences decode, tokens per forward pass in all: a new prompt is read "
        "in chunks of the rest (at least half), so decoding never stalls for a long prompt",
    )  # fmt: skip
    p.set_defaults(func=_guard(_cmd_serve))


# ------------------------------------------------------------------- commands
def _cmd_run(args: argparse.Namespace) -> int:
    prompt = args.prompt if args.prompt is not None else _read(args.file)
    eng = _load(args)
    seed = _seed(args.seed)
    if args.echo:
        sys.stdout.write(prompt)
    pieces = eng.generate(prompt, stop=args.stop, seed=seed, **_sampling(args))
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    print(_summary(eng, seed), file=sys.stderr)
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    eng = _load(args)
    seed = _seed(args.seed)
    tty = sys.stdin.isatty()
    if tty:
        print(f"chatting with {eng.path.name}; /reset clears, /exit quits", file=sys.stderr)
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: list[dict] = []
    params = _sampling(args)
    while (line := _readline(tty)) is not None:
        line = line.strip()
        if line in ("/exit", "/quit"):
            break
        if line == "/reset":
            history = []
            continue
        if not line:
            continue
        history.append({"role": "user", "content": line})
        prompt = _fit(eng, system, history)
        reply = []
        pieces = eng.generate(prompt, stop=eng.chat_stops(), seed=seed, **params)
        for piece in pieces:
            if not reply:
                piece = piece.lstrip()
            if piece:
                reply.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
        history.append({"role": "assistant", "content": "".join(reply).strip()})
        if tty:
            print(_summary(eng, seed), file=sys.stderr)
        seed = None if seed is None else seed + 1  # fresh draws each turn, still reproducible
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from ternlab.inference import _kernels
    from ternlab.inference.bench import run_bench

    threads = _thread_list(args.threads)
    results = []
    for path in args.model:
        _check_file(path)
        t0 = time.perf_counter()
        model = _kernels.Model(
            path, max(threads), max(args.n_prompt, args.n_gen), args.layout, 1, args.kv_type
        )
        load_s = time.perf_counter() - t0
        for t in threads:
            r = run_bench(path, args.n_prompt, args.n_gen, t, args.repetitions, model=model)
            results.append(r | {"load_s": load_s})
        del model
    _print_bench(results)
    if args.output:
        Path(args.output).write_text(json.dumps({"results": results}, indent=2) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ternlab.inference.server import serve

    if args.slots < 1 or args.queue < 1 or args.step_tokens < 2:
        raise ValueError("--slots and --queue must be >= 1, --step-tokens >= 2")
    serve(_load(args), args.host, args.port, args.queue, args.step_tokens)
    return 0


# -------------------------------------------------------------------- helpers
def _guard(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """One ``error:`` line and exit status 1 instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except KeyboardInterrupt:
            print("", file=sys.stderr)
            return 130
        except (OSError, ValueError, RuntimeError, ImportError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1

    return run


def _check_file(path: str) -> None:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such GGUF file")


def _load(args: argparse.Namespace):
    from ternlab.inference.engine import Engine

    _check_file(args.model)
    slots = getattr(args, "slots", 1)
    return Engine(
        args.model,
        threads=args.threads,
        n_ctx=args.ctx_size,
        layout=args.layout,
        slots=slots,
        kv_type=args.kv_type,
    )


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise OSError(f"{path}: cannot read the prompt file ({e.strerror})") from None


def _seed(seed: int) -> int:
    return seed if seed >= 0 else random.SystemRandom().randrange(2**31)


def _sampling(args: argparse.Namespace) -> dict:
    return {
        "max_tokens": args.max_tokens,
        "temperature": args.temp,
        "top_k": args.top_k,
        "top_p": args.top_p,
    }


def _summary(eng, seed: int) -> str:
    st = eng.last
    return (
        f"[prompt {st.prompt_tokens} tokens ({st.cached_tokens} cached), "
        f"{st.prefill_tps:.1f} tokens/s | generated {st.completion_tokens} tokens, "
        f"{st.decode_tps:.1f} tokens/s | finish: {st.finish_reason} | seed {seed} | "
        f"threads {eng.threads}]"
    )


def _readline(tty: bool) -> str | None:
    if tty:
        try:
            import readline  # noqa: F401 - line editing for input()
        except ImportError:
            pass
        try:
            return input("> ")
        except EOFError:
            return None
    line = sys.stdin.readline()
    return line if line else None


def _fit(eng, system: list[dict], history: list[dict]) -> str:
    """The chat prompt, dropping the oldest turns until it leaves room to answer."""
    while True:
        prompt = eng.render_chat(system + history)
        if len(eng.encode(prompt)) < eng.n_ctx - 1 or len(history) <= 1:
            return prompt
        del history[:2]  # the oldest user turn and its answer
        print("(context full: forgot the oldest turn)", file=sys.stderr)


def _thread_list(text: str) -> list[int]:
    try:
        ts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        ts = []
    if not ts or min(ts) < 1:
        raise ValueError(f"-t/--threads: expected positive integers like 1,2,4; got {text!r}")
    return ts


def _print_bench(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ternlab bench")
    for col in (
        "model",
        "size",
        "type",
        "isa",
        "layout",
        "kv",
        "threads",
        "test",
        "tokens/s",
        "ms/token",
    ):
        right = col in ("size", "threads", "tokens/s", "ms/token")
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    for r in results:
        for test in ("pp", "tg"):
            m = r[test]
            if m is None:
                continue
            n = r["n_prompt"] if test == "pp" else r["n_gen"]
            table.add_row(
                r["model_name"],
                f"{r['file_size'] / 2**20:.2f} MiB",
                str(r["type"]),
                r["isa"],
                r["layout"],
                r["kv_type"],
                str(r["threads"]),
                f"{test}{n}",
                f"{m['tokens_per_s']:.2f} ± {m['tokens_per_s_stdev']:.2f}",
                f"{m['ms_per_token']:.3f}",
            )
    console = Console()
    if not console.is_terminal:  # piped: rich would assume 80 columns and cut cells
        console = Console(width=200)
    console.print(table)
    rss = max(r["peak_rss_bytes"] for r in results)
    print(f"peak RSS {rss / 2**20:.1f} MiB; {results[0]['machine']['cpu']}", file=sys.stderr)
