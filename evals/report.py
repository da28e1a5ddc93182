"""The comparison report: one JSON file, one Markdown file and three PNG plots.

Laid out like the BitNet papers' comparison tables (size, memory, latency,
throughput, energy, perplexity, task accuracy per model, then the ternary model's
ratios to the FP16 baseline). Energy figures say whether they were measured (RAPL)
or estimated (arithmetic model); an estimate is always marked "est.".
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ternlab import __version__

#: Every summary row has these keys (the test checks a real report against this list).
SUMMARY_FIELDS = (
    "label",
    "path",
    "backend",
    "ternary",
    "weights",
    "file_size_bytes",
    "peak_rss_bytes",
    "prefill_tokens_per_s",
    "prefill_ms_per_token",
    "decode_tokens_per_s",
    "decode_ms_per_token",
    "energy_j_per_token",
    "energy_method",
    "energy_j_per_token_estimate_7nm",
    "ppl_arith_heldout",
    "arith_strict_match",
    "arith_flexible_extract",
    "arith_n",
)
RATIO_FIELDS = (
    "file_size",
    "peak_rss",
    "prefill_speedup",
    "decode_speedup",
    "energy_per_token",
)
FILES = ("report.json", "report.md", "quality_vs_memory.png", "tokens_per_s.png", "energy.png")


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """The flat summary row of one model's suite result."""
    sysm, ppl, tasks = res["systems"], res["perplexity"], res["tasks"]
    pp, tg = sysm.get("pp") or {}, sysm.get("tg") or {}
    en = sysm["energy"]["tg"]
    arith = tasks.get("ternlab_arith", {})
    row = {
        "label": res["label"],
        "path": res["path"],
        "backend": res["backend"],
        "ternary": res["ternary"],
        # The GGUF tensor type (i2_s, f16, ...); PyTorch keeps float32 (latent) weights.
        "weights": sysm.get("type") or ("ternary (fp32 latent)" if res["ternary"] else "fp32"),
        "file_size_bytes": sysm["file_size"],
        "peak_rss_bytes": sysm["peak_rss_bytes"],
        "prefill_tokens_per_s": pp.get("tokens_per_s"),
        "prefill_ms_per_token": pp.get("ms_per_token"),
        "decode_tokens_per_s": tg.get("tokens_per_s"),
        "decode_ms_per_token": tg.get("ms_per_token"),
        "energy_j_per_token": en["j_per_token"],
        "energy_method": en["method"],
        "energy_j_per_token_estimate_7nm": en["estimate"]["j_per_token_7nm"],
        "ppl_arith_heldout": ppl["arith_heldout"]["ppl"],
        "arith_strict_match": arith.get("strict_match"),
        "arith_flexible_extract": arith.get("flexible_extract"),
        "arith_n": arith.get("n"),
    }
    for name, p in ppl.items():
        if name != "arith_heldout":
            row[f"ppl_{name}"] = p["ppl"]
        if "rel_diff_vs_pytorch" in p:
            row[f"ppl_{name}_pytorch"] = p["pytorch"]["ppl"]
            row[f"ppl_{name}_rel_diff_vs_pytorch"] = p["rel_diff_vs_pytorch"]
    for name, t in tasks.items():
        if name != "ternlab_arith":
            row[f"{name}_strict_match"] = t["strict_match"]
            row[f"{name}_flexible_extract"] = t["flexible_extract"]
            row[f"{name}_n"] = t["n"]
    return row


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(base: dict[str, Any], model: dict[str, Any]) -> dict[str, float | None]:
    """How the model compares with the baseline: ``x`` smaller / faster / less energy."""
    return {
        "file_size": _ratio(base["file_size_bytes"], model["file_size_bytes"]),
        "peak_rss": _ratio(base["peak_rss_bytes"], model["peak_rss_bytes"]),
        "prefill_speedup": _ratio(model["prefill_tokens_per_s"], base["prefill_tokens_per_s"]),
        "decode_speedup": _ratio(model["decode_tokens_per_s"], base["decode_tokens_per_s"]),
        "energy_per_token": _ratio(base["energy_j_per_token"], model["energy_j_per_token"]),
    }


def build(results: list[dict[str, Any]], suite: dict, commands: list[str]) -> dict[str, Any]:
    """The report dict: metadata, the suite settings, summaries, ratios and full results.

    ``results[0]`` is the baseline; every later model is compared with it.
    """
    from ternlab.inference.bench import machine_info

    rows = [summarize(r) for r in results]
    return {
        "ternlab_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info() | {"machine": platform.machine()},
        "suite": suite,
        "commands": commands,
        "baseline": rows[0]["label"],
        "summary": rows,
        "ratios_vs_baseline": {r["label"]: ratios(rows[0], r) for r in rows[1:]},
        "results": results,
    }


def missing_fields(report: dict[str, Any]) -> list[str]:
    """Fields a report lacks (empty when complete)."""
    miss = [
        k
        for k in ("machine", "suite", "commands", "summary", "ratios_vs_baseline")
        if k not in report
    ]
    for row in report.get("summary", []):
        miss += [f"summary[{row.get('label')}].{k}" for k in SUMMARY_FIELDS if k not in row]
    for label, r in report.get("ratios_vs_baseline", {}).items():
        miss += [f"ratios[{label}].{k}" for k in RATIO_FIELDS if k not in r]
    return miss


# ------------------------------------------------------------------ Markdown
def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.2f}"


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _energy(row: dict) -> str:
    j = row["energy_j_per_token"]
    unit = f"{j * 1e9:.3g} nJ" if j < 1e-3 else f"{j * 1e3:.3g} mJ"
    return unit + (" (est.)" if row["energy_method"] == "estimate" else " (RAPL)")


def _extra_columns(rows: list[dict]) -> list[tuple[str, str, Any]]:
    """(header, key, formatter) of the optional columns every row has: perplexity on
    other texts, then other tasks' strict and flexible exact match."""
    keys = set.intersection(*(set(r) for r in rows))
    ppl = sorted(
        k for k in keys if k.startswith("ppl_") and k != "ppl_arith_heldout" and "pytorch" not in k
    )
    tasks = sorted(
        k[: -len("_strict_match")]
        for k in keys
        if k.endswith("_strict_match") and not k.startswith("arith")
    )
    cols: list[tuple[str, str, Any]] = [(f"PPL {k[4:]}", k, _f) for k in ppl]
    for t in tasks:
        cols += [
            (f"{t} EM strict", f"{t}_strict_match", _pct),
            (f"{t} EM flex", f"{t}_flexible_extract", _pct),
        ]
    return cols


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    rows = report["summary"]
    extra = _extra_columns(rows)
    head = (
        [
            "Model",
            "Weights",
            "File (MiB)",
            "Peak RSS (MiB)",
            "Prefill tok/s",
            "Decode tok/s",
            "ms/token",
            "Energy/token",
            "PPL arith",
        ]
        + [h for h, _, _ in extra]
        + ["Arith EM strict", "Arith EM flex"]
    )
    lines = [
        "# ternlab evaluation report",
        "",
        f"ternlab {report['ternlab_version']}, {report['created']}, "
        f"{report['machine'].get('cpu')} ({report['machine'].get('logical_cpus')} CPUs), "
        f"{report['suite']['threads']} thread(s)."
        + (f" Baseline: **{report['baseline']}**." if len(rows) > 1 else ""),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cells = [
            f"{r['label']} ({r['backend']})",
            r["weights"],
            _mb(r["file_size_bytes"]),
            _mb(r["peak_rss_bytes"]),
            _f(r["prefill_tokens_per_s"], "{:.0f}"),
            _f(r["decode_tokens_per_s"], "{:.1f}"),
            _f(r["decode_ms_per_token"], "{:.3g}"),
            _energy(r),
            _f(r["ppl_arith_heldout"]),
            *[fmt(r[k]) for _, k, fmt in extra],
            f"{_pct(r['arith_strict_match'])} (n={r['arith_n']})",
            _pct(r["arith_flexible_extract"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if report["ratios_vs_baseline"]:
        lines += ["", "## Ternary vs baseline", ""]
    for label, rt in report["ratios_vs_baseline"].items():
        lines.append(
            f"* **{label}**: file {_f(rt['file_size'])}x smaller, peak RSS "
            f"{_f(rt['peak_rss'])}x smaller, prefill {_f(rt['prefill_speedup'])}x and decode "
            f"{_f(rt['decode_speedup'])}x the baseline's speed, "
            f"{_f(rt['energy_per_token'])}x less energy per decoded token."
        )
    lines += _agreement(rows) + _energy_notes(report) + _samples(report) + _commands(report)
    return "\n".join(lines) + "\n"


def _agreement(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        for k, v in r.items():
            if k.endswith("_rel_diff_vs_pytorch"):
                name = k[4 : -len("_rel_diff_vs_pytorch")]
                out.append(
                    f"* {r['label']}: {name} perplexity {r[f'ppl_{name}']:.4f} ({r['backend']}) vs "
                    f"{r[f'ppl_{name}_pytorch']:.4f} (PyTorch), relative difference {v:.2e}"
                )
    return ["", "## Engine vs PyTorch perplexity", "", *out] if out else []


def _energy_notes(report: dict) -> list[str]:
    methods = {r["energy_method"] for r in report["summary"]}
    src = report["results"][0]["systems"]["energy"]["tg"]["estimate"]["source"]
    lines = ["", "## Energy", ""]
    if "estimate" in methods:
        lines.append(
            "No readable RAPL counter on this machine (/sys/class/powercap/intel-rapl*/energy_uj): "
            f"energy per token is an **estimate**, {src}, at 7 nm. It is not a measurement of "
            "this CPU; it compares the arithmetic the two models need."
        )
    if "rapl" in methods:
        lines.append(
            "Energy per decoded token measured with RAPL (whole CPU package, other processes "
            f"included: an upper bound). The arithmetic estimate ({src}) is in report.json."
        )
    return lines


def _samples(report: dict) -> list[str]:
    lines = ["", "## Sample outputs (arithmetic task)", ""]
    for res in report["results"]:
        samples = res["tasks"].get("ternlab_arith", {}).get("samples", [])[:2]
        for s in samples:
            out = (s.get("output") or "").strip().replace("\n", " / ")
            ans = s.get("strict-match", {}).get("answer")
            lines.append(
                f"* {res['label']}: *{s.get('question')}* -> `{out[:160]}` (strict: {ans})"
            )
    return lines


def _commands(report: dict) -> list[str]:
    return ["", "## Commands", "", "```bash", *report["commands"], "```"]


# ------------------------------------------------------------------ plots
def plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """quality_vs_memory.png, tokens_per_s.png and energy.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["summary"]
    labels = [r["label"] for r in rows]
    colors = ["#4c72b0" if not r["ternary"] else "#dd8452" for r in rows]
    paths = []

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r, c in zip(rows, colors, strict=True):
        x = r["file_size_bytes"] / 2**20
        ax.scatter([x], [100 * (r["arith_strict_match"] or 0)], s=80, color=c)
        ax.annotate(
            r["label"],
            (x, 100 * (r["arith_strict_match"] or 0)),
            textcoords="offset points",
            xytext=(6, 6),
        )
    ax.set_xlabel("model file size (MiB)")
    ax.set_ylabel("arithmetic exact match, strict (%)")
    ax.set_title("Quality vs memory")
    ax.set_xlim(left=0)
    ax.set_ylim(-5, 105)
    paths.append(_save(fig, out_dir / "quality_vs_memory.png"))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    width = 0.38
    xs = range(len(rows))
    pp = [r["prefill_tokens_per_s"] or 0 for r in rows]
    tg = [r["decode_tokens_per_s"] or 0 for r in rows]
    ax.bar([x - width / 2 for x in xs], pp, width, label="prefill")
    ax.bar([x + width / 2 for x in xs], tg, width, label="decode")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("tokens/s")
    ax.set_title(f"Throughput ({report['suite']['threads']} thread(s))")
    ax.legend()
    paths.append(_save(fig, out_dir / "tokens_per_s.png"))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    vals = [r["energy_j_per_token"] * 1e9 for r in rows]
    ax.bar(labels, vals, color=colors)
    est = any(r["energy_method"] == "estimate" for r in rows)
    ax.set_ylabel("nJ per decoded token" + (" (estimate, 7 nm arithmetic)" if est else " (RAPL)"))
    ax.set_title("Energy per token" + (" - ESTIMATE" if est else ""))
    paths.append(_save(fig, out_dir / "energy.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write report.json, report.md and the plots into ``out_dir``; returns the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(markdown(report))
    return [out / "report.json", out / "report.md", *plots(report, out)]
