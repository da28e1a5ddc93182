"""Training-step benchmark for BitLinear: forward + backward time and peak memory.

Variants, all in bfloat16 (parameters and activations):

* ``bitlinear_triton``: ``BitLinear(kernel="triton")`` (fused act-quant + int8 GEMM);
* ``bitlinear_triton_2pass``: the same kernels with a separate act-quant pass;
* ``bitlinear_torch``: ``BitLinear(kernel="torch")``, plain PyTorch fake quantization;
* ``bitlinear_torch_compile``: that layer under ``torch.compile``;
* ``linear_bf16``: ``nn.Linear`` (the baseline every ratio is taken against).

Shapes are the BitNet b1.58 2B4T projections (in_features x out_features)
with 4,096 to 16,384 tokens. One step is ``y = layer(x); y.backward(dy)`` with
gradients for ``x`` and the weight. Times are medians over ``--iters`` runs
after ``--warmup`` runs (CUDA events), peak memory is
``torch.cuda.max_memory_allocated`` during a step minus what was allocated
before it. Writes JSON (``--out``) and prints a table.

    python benchmarks/bitlinear_train_gpu.py --out bench-results/bitlinear_train.json
    python benchmarks/bitlinear_train_gpu.py --device cpu   # smoke run, tiny sizes

Without CUDA it exits with status 2 unless ``--device cpu`` is given; on CPU the
Triton variants only run when ``TRITON_INTERPRET=1`` is set (slow; smoke only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ternlab.bitlinear import BitLinear
from ternlab.bitlinear.kernels import triton_available

#: (in_features, out_features) of the 2B4T projections: q/o, k/v, gate/up, down.
SHAPES_2B4T = [(2560, 2560), (2560, 640), (2560, 6912), (6912, 2560)]
GPU_TOKENS = [4096, 8192, 16384]
#: CPU smoke run: the 2B4T shapes divided by ten, a few tokens.
CPU_SHAPES = [(256, 256), (256, 64), (256, 688), (688, 256)]
CPU_TOKENS = [32]
BASELINE = "linear_bf16"
VARIANTS = (
    "bitlinear_triton",
    "bitlinear_triton_2pass",
    "bitlinear_torch",
    "bitlinear_torch_compile",
    BASELINE,
)
DTYPE = torch.bfloat16


class _TwoPassBitLinear(BitLinear):
    """BitLinear whose Triton forward quantizes activations in a separate kernel."""

    def _training_forward(self, x: torch.Tensor) -> torch.Tensor:
        from ternlab.bitlinear.triton_function import bitlinear_triton

        return bitlinear_triton(x, self.weight, fuse_act_quant=False)


def _make_layer(variant: str, k: int, n: int, device: str) -> nn.Module:
    torch.manual_seed(0)
    if variant == BASELINE:
        return nn.Linear(k, n, bias=False, device=device, dtype=DTYPE)
    if variant == "bitlinear_triton_2pass":
        return _TwoPassBitLinear(k, n, kernel="triton", device=device, dtype=DTYPE)
    kernel = "triton" if variant == "bitlinear_triton" else "torch"
    layer = BitLinear(k, n, kernel=kernel, device=device, dtype=DTYPE)
    return torch.compile(layer) if variant == "bitlinear_torch_compile" else layer


def _skip_reason(variant: str, device: str) -> str | None:
    if "triton" not in variant:
        return None
    if not triton_available():
        return "triton is not installed"
    if device == "cpu" and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        return "triton on CPU needs TRITON_INTERPRET=1"
    return None


def _timed(step: Callable[[], None], device: str, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def _peak_step_bytes(
    step: Callable[[], None], clear: Callable[[], None], device: str
) -> int | None:
    if device != "cuda":
        return None
    clear()  # the previous step's gradients must not count as "before"
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def bench_one(variant: str, k: int, n: int, tokens: int, args: argparse.Namespace) -> dict:
    """Time one (variant, shape, tokens) cell; returns a JSON-ready dict."""
    layer = _make_layer(variant, k, n, args.device)
    x = torch.randn(tokens, k, device=args.device, dtype=DTYPE, requires_grad=True)
    dy = torch.randn(tokens, n, device=args.device, dtype=DTYPE)
    params = list(layer.parameters())

    def clear() -> None:
        x.grad = None
        for p in params:
            p.grad = None

    def step() -> None:
        clear()
        layer(x).backward(dy)

    times = _timed(step, args.device, args.warmup, args.iters)
    peak = _peak_step_bytes(step, clear, args.device)
    return {
        "variant": variant,
        "in_features": k,
        "out_features": n,
        "tokens": tokens,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "iters": len(times),
        "peak_step_mib": None if peak is None else peak / 2**20,
    }


def _environment(device: str) -> dict:
    env = {
        "device": device,
        "device_name": torch.cuda.get_device_name()
        if device == "cuda"
        else (platform.processor() or platform.machine()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dtype": str(DTYPE).removeprefix("torch."),
        "triton_interpret": os.environ.get("TRITON_INTERPRET", "0"),
    }
    if triton_available():
        import triton

        env["triton"] = triton.__version__
    return env


def _add_ratios(results: list[dict]) -> None:
    base = {
        (r["in_features"], r["out_features"], r["tokens"]): r
        for r in results
        if r["variant"] == BASELINE and "median_ms" in r
    }
    for r in results:
        b = base.get((r["in_features"], r["out_features"], r["tokens"]))
        if b is None or "median_ms" not in r:
            continue
        r["time_vs_linear_bf16"] = r["median_ms"] / b["median_ms"]
        if r["peak_step_mib"] is not None and b["peak_step_mib"]:
            r["memory_vs_linear_bf16"] = r["peak_step_mib"] / b["peak_step_mib"]


def _add_goals(results: list[dict]) -> None:
    """Mark the issue's goals on the Triton rows: <= 1.25x nn.Linear bf16, faster than torch."""
    torch_ms = {
        (r["in_features"], r["out_features"], r["tokens"]): r["median_ms"]
        for r in results
        if r["variant"] == "bitlinear_torch" and "median_ms" in r
    }
    for r in results:
        if not r["variant"].startswith("bitlinear_triton") or "median_ms" not in r:
            continue
        if "time_vs_linear_bf16" in r:
            r["goal_within_1.25x_linear_bf16"] = r["time_vs_linear_bf16"] <= 1.25
        ref = torch_ms.get((r["in_features"], r["out_features"], r["tokens"]))
        if ref is not None:
            r["goal_faster_than_torch"] = r["median_ms"] < ref


def _print_table(results: list[dict], variants: list[str]) -> None:
    cells = {(r["in_features"], r["out_features"], r["tokens"], r["variant"]): r for r in results}
    keys = sorted({(r["in_features"], r["out_features"], r["tokens"]) for r in results})
    head = f"{'K x N':>11} {'tokens':>6} | " + " | ".join(f"{v:>24}" for v in variants)
    print(head)
    print("-" * len(head))
    for k, n, t in keys:
        row = []
        for v in variants:
            r = cells.get((k, n, t, v), {})
            if "median_ms" not in r:
                row.append(f"{r.get('skipped', r.get('error', '-'))[:24]:>24}")
                continue
            ratio = r.get("time_vs_linear_bf16")
            mem = "" if r["peak_step_mib"] is None else f" {r['peak_step_mib']:.0f}M"
            ratio_s = f" ({ratio:.2f}x)" if ratio is not None else ""
            row.append(f"{r['median_ms']:.3f}ms{ratio_s}{mem}".rjust(24))
        print(f"{f'{k}x{n}':>11} {t:>6} | " + " | ".join(row))


def _parse_shape(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.lower().split("x"))
    except ValueError:
        msg = f"expected KxN like 2560x6912, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return k, n


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--tokens", type=int, nargs="+", help="default 4096 8192 16384 (cpu: 32)")
    ap.add_argument("--shapes", type=_parse_shape, nargs="+", help="KxN, default the 2B4T shapes")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--warmup", type=int, help="default 10 (cpu: 1)")
    ap.add_argument("--iters", type=int, help="default 30 (cpu: 3)")
    ap.add_argument("--out", type=Path, help="write the JSON here (else print it)")
    args = ap.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "bitlinear_train_gpu: no CUDA device is available. This benchmark measures GPU "
            "training steps; pass --device cpu for a smoke run with tiny sizes.",
            file=sys.stderr,
        )
        return 2
    cpu = args.device == "cpu"
    args.tokens = args.tokens or (CPU_TOKENS if cpu else GPU_TOKENS)
    args.shapes = args.shapes or (CPU_SHAPES if cpu else SHAPES_2B4T)
    args.warmup = args.warmup if args.warmup is not None else (1 if cpu else 10)
    args.iters = args.iters if args.iters is not None else (3 if cpu else 30)

    results: list[dict] = []
    for k, n in args.shapes:
        for tokens in args.tokens:
            for variant in args.variants:
                cell = {"variant": variant, "in_features": k, "out_features": n, "tokens": tokens}
                reason = _skip_reason(variant, args.device)
                if reason:
                    results.append({**cell, "skipped": reason})
                    continue
                try:
                    results.append(bench_one(variant, k, n, tokens, args))
                except Exception as exc:  # one broken variant must not hide the others
                    results.append({**cell, "error": f"{type(exc).__name__}: {exc}"[:500]})
                if args.device == "cuda":
                    torch.cuda.empty_cache()
    _add_ratios(results)
    _add_goals(results)
    _print_table(results, args.variants)
    report = {
        "benchmark": "bitlinear_train_gpu",
        "warmup": args.warmup,
        "iters": args.iters,
        "environment": _environment(args.device),
        "results": results,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
