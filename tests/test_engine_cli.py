"""``ternlab run | chat | bench | serve`` as a user runs them: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import engine_model

from ternlab.inference.engine import Engine
from ternlab.inference.scheduler import STEP_TOKENS

FIELDS = (
    "model", "file_size", "arch", "type", "isa", "layout", "kv_type", "kv_cache_bytes", "threads",
    "n_prompt", "n_gen", "repetitions", "peak_rss_bytes", "machine", "ternlab_version", "n_params",
    "pp", "tg", "timestamp",
)  # fmt: skip
TERNLAB = str(Path(sys.executable).parent / "ternlab")


@pytest.fixture(scope="module")
def gguf(tmp_path_factory) -> Path:
    return engine_model(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def eng(gguf) -> Engine:
    return Engine(gguf, threads=1)


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TERNLAB, *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_run_streams_the_greedy_text(gguf, eng):
    r = _run("run", "-m", str(gguf), "-p", "12+3=", "-n", "10", "--temp", "0", "-t", "1")
    assert r.returncode == 0, r.stderr
    want = "".join(eng.generate("12+3=", max_tokens=10))
    assert r.stdout == want + "\n"
    assert "tokens/s" in r.stderr and f"generated {eng.last.completion_tokens} tokens" in r.stderr


def test_run_with_a_seed_is_reproducible(gguf, tmp_path):
    prompt = tmp_path / "p.txt"
    prompt.write_text("7+")
    args = ("run", "-m", str(gguf), "-f", str(prompt), "-n", "12", "--temp", "1.2", "--seed", "9")
    a, b = _run(*args), _run(*args)
    assert a.returncode == 0 and a.stdout == b.stdout
    assert "seed 9" in a.stderr


def test_chat_reads_piped_turns_and_keeps_history(gguf, eng):
    r = _run(
        "chat", "-m", str(gguf), "--temp", "0", "-n", "8", stdin="hi\n\n1+2=\n/exit\nnot read\n"
    )
    assert r.returncode == 0, r.stderr
    # The same conversation through the API: turn 2 sees turn 1 and its answer.
    history: list[dict] = []
    want = ""
    for user in ("hi", "1+2="):
        history.append({"role": "user", "content": user})
        prompt = eng.render_chat(history)
        text = "".join(eng.generate(prompt, max_tokens=8, stop=eng.chat_stops()))
        want += text.lstrip() + "\n"
        history.append({"role": "assistant", "content": text.strip()})
    assert r.stdout == want


def test_chat_ends_at_end_of_input(gguf):
    r = _run("chat", "-m", str(gguf), "--temp", "0", "-n", "3", stdin="hello\n")
    assert r.returncode == 0 and r.stdout.count("\n") == 1


def test_bench_writes_json_with_every_field(gguf, tmp_path):
    out = tmp_path / "bench.json"
    r = _run(
        "bench", "-m", str(gguf), "-p", "16", "-n", "4", "-t", "1,2", "-r", "2", "-o", str(out)
    )
    assert r.returncode == 0, r.stderr
    assert "pp16" in r.stdout and "tg4" in r.stdout
    results = json.loads(out.read_text())["results"]
    assert [x["threads"] for x in results] == [1, 2]
    for x in results:
        for key in FIELDS:
            assert key in x, key
        assert x["file_size"] == gguf.stat().st_size and x["peak_rss_bytes"] > 0
        assert x["machine"]["cpu"]
        for test, n in (("pp", 16), ("tg", 4)):
            m = x[test]
            assert len(m["tokens_per_s_runs"]) == 2 and m["n_tokens"] == n
            assert min(m["tokens_per_s_runs"]) <= m["tokens_per_s"] <= max(m["tokens_per_s_runs"])
            assert m["ms_per_token"] == pytest.approx(1000 / m["tokens_per_s"])


@pytest.mark.parametrize("layout", ["bits2", "base3"])
def test_bench_layout_option(gguf, tmp_path, layout):
    out = tmp_path / "bench.json"
    r = _run("bench", "-m", str(gguf), "-p", "4", "-n", "2", "-r", "1", "--layout", layout,
             "-o", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [x["layout"] for x in json.loads(out.read_text())["results"]] == [layout]
    assert layout in r.stdout


@pytest.mark.parametrize("kv_type", ["f32", "f16"])
def test_bench_kv_type_option(gguf, eng, tmp_path, kv_type):
    out = tmp_path / "bench.json"
    r = _run("bench", "-m", str(gguf), "-p", "6", "-n", "2", "-r", "1", "--kv-type", kv_type,
             "-o", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    [x] = json.loads(out.read_text())["results"]
    c = eng.config
    values = 6 * c["n_layer"] * 2 * c["n_head_kv"] * c["head_dim"]  # n_ctx = max(-p, -n)
    assert x["kv_type"] == kv_type and kv_type in r.stdout
    assert x["kv_cache_bytes"] == values * (2 if kv_type == "f16" else 4)


def test_run_with_an_f16_cache(gguf):
    r = _run("run", "-m", str(gguf), "-p", "12+3=", "-n", "10", "--temp", "0", "-t", "1",
             "--kv-type", "f16")  # fmt: skip
    assert r.returncode == 0, r.stderr
    want = "".join(Engine(gguf, threads=1, kv_type="f16").generate("12+3=", max_tokens=10))
    assert r.stdout == want + "\n"


def test_bad_kv_type_names_the_option_and_the_choices(gguf):
    r = _run("run", "-m", str(gguf), "-p", "x", "--kv-type", "bf16")
    assert r.returncode == 2 and "argument --kv-type: invalid choice: 'bf16'" in r.stderr
    assert "'f32', 'f16'" in r.stderr or "f32, f16" in r.stderr  # quoting varies by Python


@pytest.mark.parametrize("cmd", ["run", "chat", "bench", "serve"])
def test_missing_file_is_one_line_and_exit_1(tmp_path, cmd):
    missing = tmp_path / "nothing.gguf"
    r = _run(cmd, "-m", str(missing), *(["-p", "x"] if cmd == "run" else []), stdin="")
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and str(missing) in r.stderr
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_serve_refuses_a_step_budget_below_two(gguf):
    r = _run("serve", "-m", str(gguf), "--port", "0", "--step-tokens", "1")
    assert r.returncode == 1 and "--step-tokens >= 2" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_file_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all" * 4)
    r = _run("run", "-m", str(bad), "-p", "x")
    assert r.returncode == 1 and "broken.gguf" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_too_long_prompt_is_an_error_not_a_traceback(gguf):
    r = _run("run", "-m", str(gguf), "-p", "1+1=2 " * 50, "-c", "16")
    assert r.returncode == 1 and "context" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("cmd", "words"),
    [
        ("run", ["--temp", "(default: 0.8)", "--top-k", "--seed"]),
        ("chat", ["/exit", "--system"]),
        ("bench", ["(default: 128)", "comma-separated"]),
        (
            "serve",
            [
                "(default: 127.0.0.1)",
                "(default: 8080)",
                "--kv-type",
                "(default: f32)",
                "--step-tokens STEP_TOKENS while sequences decode",
                f"for a long prompt (default: {STEP_TOKENS})",
            ],
        ),
    ],
)
def test_help_shows_options_and_defaults(cmd, words):
    r = _run(cmd, "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for w in words:
        assert w in text
