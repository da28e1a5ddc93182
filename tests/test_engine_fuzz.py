"""Fuzzing the engine's file loaders; each fuzzer runs in a child process, since a crash would
kill pytest itself, and the test asserts the child exits 0.

* ``GGUFFile``: atheris (libFuzzer) mutates a seed corpus of valid and corrupt files for a
  bounded time. The C++ is not built with coverage instrumentation (g++, no clang here), so
  the feedback comes from :func:`outcome`, which branches on the kind of result: inputs that
  reach a new error kind are kept. Without atheris a seeded random mutation loop
  (``gguf_corpus.mutate``) runs instead.
* ``Model``: structure-aware mutants of a real exported model (``gguf_corpus.model_mutant``:
  hyperparameters, tokenizer arrays, tensor shapes/types/data) plus raw byte mutations.

The only allowed outcomes are success or ``GGUFError`` (``Model``: also ``ValueError`` and
``RuntimeError``); anything else, and any crash, fails. Inputs are written to a memfd, not
the disk. ``TERNLAB_FUZZ_SECONDS`` sets each fuzzer's time (default 20 s and 10 s).
Run a fuzzer by hand: ``python tests/test_engine_fuzz.py gguf CORPUS_DIR -max_total_time=60``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FUZZ_SECONDS = float(os.environ.get("TERNLAB_FUZZ_SECONDS", "20"))


# --- the child: fuzz targets ----------------------------------------------------------------


class MemFile:
    """One in-memory file, rewritten for every input; ``path`` reopens it."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("ternlab-fuzz")
        self.path = f"/proc/self/fd/{self.fd}"

    def write(self, data: bytes) -> str:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        return self.path


def outcome(msg: str | None) -> str:
    """The kind of a loader result; one branch per kind, which is what guides atheris."""
    if msg is None:
        return "ok"
    if "empty file" in msg or "smaller than a GGUF header" in msg:
        return "too-small"
    if "not a GGUF file" in msg:
        return "magic"
    if "version" in msg or "big-endian" in msg:
        return "version"
    if "count" in msg:
        return "count"
    if "UTF-8" in msg:
        return "utf8"
    if "general.alignment" in msg:
        return "alignment"
    if "nested" in msg:
        return "nesting"
    if "array" in msg:
        return "array"
    if "bool" in msg:
        return "bool"
    if "value type" in msg or "out of range" in msg:
        return "value-type"
    if "appears twice" in msg:
        return "duplicate"
    if "length" in msg:
        return "string-length"
    if "dimension" in msg:
        return "dims"
    if "tensor type" in msg or "stores blocks" in msg or "absurdly" in msg:
        return "tensor-type"
    if "alignment" in msg:
        return "offset-alignment"
    if "overlap" in msg:
        return "overlap"
    if "past the end" in msg or "data section" in msg:
        return "tensor-bounds"
    if "truncated" in msg:
        return "truncated"
    return "other"


class Stats:
    """Outcome counts, saved as JSON now and then (libFuzzer exits without running atexit)."""

    def __init__(self, path: str) -> None:
        self.path, self.runs, self.counts = path, 0, {}

    def count(self, kind: str) -> None:
        self.runs += 1
        new = kind not in self.counts
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if new or self.runs % 5000 == 0:
            self.save()

    def save(self) -> None:
        tmp = self.path + ".tmp"
        Path(tmp).write_text(json.dumps({"runs": self.runs, "outcomes": self.counts}))
        os.replace(tmp, self.path)


class GgufTarget:
    """Opens each input with GGUFFile, reads everything back and checks the invariants a
    successful load promises; a GGUFError must name the file."""

    def __init__(self, stats: Stats) -> None:
        from ternlab.inference import _kernels

        self.k, self.file, self.stats = _kernels, MemFile(), stats

    def __call__(self, data: bytes) -> None:
        path = self.file.write(data)
        try:
            f = self.k.GGUFFile(path)
            meta, tensors = f.metadata, f.tensors
            assert f.file_size == len(data) and f.version in (2, 3)
            assert f.alignment >= 8 and f.alignment & (f.alignment - 1) == 0
            assert all(isinstance(key, str) for key in meta)
            end = 0
            for t in sorted(tensors, key=lambda t: t["offset"]):
                assert t["offset"] % f.alignment == 0 and t["offset"] >= end  # no overlap
                end = t["offset"] + t["nbytes"]
                assert end <= len(data) and min(t["shape"]) >= 1 and t["nbytes"] > 0
            del f
            kind = outcome(None)
        except self.k.GGUFError as e:
            assert path in str(e), str(e)
            kind = outcome(str(e))
        self.stats.count(kind)


def fuzz_gguf(corpus: str, stats: str, libfuzzer_args: list[str], seconds: float) -> None:
    """atheris on GgufTarget over ``corpus``, or the fallback loop without atheris."""
    target = GgufTarget(Stats(stats))
    try:
        if os.environ.get("FUZZ_ENGINE") == "random":
            raise ImportError("FUZZ_ENGINE=random")
        import atheris
    except ImportError as e:
        print(f"no atheris ({e}): random mutation fallback", flush=True)
        return fallback_loop(target, corpus, seconds)
    instrumented = atheris.instrument_func(outcome)
    globals()["outcome"] = instrumented
    argv = [sys.argv[0], *libfuzzer_args, corpus]
    atheris.Setup(argv, target)
    atheris.Fuzz()  # exits the process when -max_total_time is up


def fallback_loop(target: GgufTarget, corpus: str, seconds: float) -> None:
    import numpy as np
    from gguf_corpus import mutate

    rng = np.random.default_rng(1234)
    seeds = [p.read_bytes() for p in sorted(Path(corpus).iterdir())]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        data = seeds[int(rng.integers(len(seeds)))]
        for _ in range(int(rng.integers(1, 6))):
            data = mutate(data, rng)
        target(data)
    target.stats.save()


def fuzz_model(model: str, stats: str, seconds: float) -> None:
    """Structure-aware and raw mutants of ``model`` through Model(...) and a short eval."""
    import numpy as np
    from gguf_corpus import ModelParts, model_mutant, mutate

    from ternlab.inference import _kernels as k

    parts, raw = ModelParts.read(Path(model)), Path(model).read_bytes()
    counts, mem, rng = Stats(stats), MemFile(), np.random.default_rng(4321)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if rng.integers(4):
            data = model_mutant(parts, rng)
        else:
            data = raw
            for _ in range(int(rng.integers(1, 4))):
                data = mutate(data, rng)
        path = mem.write(data)
        try:
            m = k.Model(path, threads=int(rng.integers(1, 3)), n_ctx=int(rng.choice([0, 8])))
            n_vocab = m.config["n_vocab"]
            logits = m.eval([0, n_vocab - 1], all_logits=True)
            assert logits.shape == (2, n_vocab)
            kind = "ok"
        except k.GGUFError:
            kind = "GGUFError"
        except ValueError:
            kind = "ValueError"
        except RuntimeError:
            kind = "RuntimeError"
        counts.count(kind)
    counts.save()


def main(argv: list[str]) -> None:
    """``gguf CORPUS [libFuzzer args]`` or ``model MODEL.gguf``; stats go to $FUZZ_STATS."""
    stats = os.environ.get("FUZZ_STATS", "fuzz-stats.json")
    seconds = float(os.environ.get("FUZZ_SECONDS", FUZZ_SECONDS))
    if argv[0] == "gguf":
        fuzz_gguf(argv[1], stats, argv[2:], seconds)
    elif argv[0] == "model":
        fuzz_model(argv[1], stats, seconds)
    else:
        raise SystemExit(f"unknown fuzzer {argv[0]!r}: choose gguf or model")


# --- the tests ------------------------------------------------------------------------------


def _run_child(args: list[str], tmp_path: Path, seconds: float, **env_extra: str) -> dict:
    stats = tmp_path / "stats.json"
    env = {**os.environ, **env_extra, "FUZZ_STATS": str(stats), "FUZZ_SECONDS": str(seconds)}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__)), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds * 3 + 120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"fuzzer failed (exit {proc.returncode}):\n{out[-6000:]}"
    result = json.loads(stats.read_text())
    result["wall"] = time.monotonic() - start
    print(json.dumps(result))
    return result


def _seed_corpus(where: Path) -> Path:
    import gguf_corpus as gc

    where.mkdir()
    gc.write_gguf_py(where / "gguf-py.gguf")
    (where / "sample.gguf").write_bytes(gc.sample_file()[0])
    aligned = [*gc.sample_kvs(), gc.kv("general.alignment", gc.U32, 64)]
    (where / "aligned.gguf").write_bytes(gc.build(aligned, gc.sample_tensors(), alignment=64)[0])
    (where / "v2.gguf").write_bytes(gc.build(gc.sample_kvs()[:4], [], version=2)[0])
    for bad in gc.bad_files():
        if 0 < len(bad.data) <= 8192:
            (where / f"bad-{bad.name}.gguf").write_bytes(bad.data)
    return where


@pytest.mark.slow
def test_fuzz_gguf_file(tmp_path):
    corpus = _seed_corpus(tmp_path / "corpus")
    args = [
        f"-max_total_time={int(FUZZ_SECONDS)}",
        "-max_len=8192",
        "-timeout=10",
        "-rss_limit_mb=4096",
        "-seed=20240601",
        f"-artifact_prefix={tmp_path}/",
        "-print_final_stats=1",
    ]
    result = _run_child(["gguf", str(corpus), *args], tmp_path, FUZZ_SECONDS)
    assert result["runs"] > 1000
    # The mutations reach deep into the format, not only the magic and the version.
    assert len(result["outcomes"]) >= 12, result["outcomes"]
    assert result["outcomes"].get("ok", 0) > 0


def test_fuzz_gguf_file_random_mutations(tmp_path):
    """The loop that replaces atheris where it has no wheel, for a few seconds."""
    corpus = _seed_corpus(tmp_path / "corpus")
    result = _run_child(["gguf", str(corpus)], tmp_path, 4, FUZZ_ENGINE="random")
    assert result["runs"] > 1000
    assert len(result["outcomes"]) >= 12, result["outcomes"]


@pytest.mark.slow
def test_fuzz_model(tmp_path, tmp_path_factory):
    from engine_helpers import engine_model

    from ternlab.inference import _kernels

    if not hasattr(_kernels, "Model"):
        pytest.skip("the engine has no Model yet")
    gguf, _ = engine_model(tmp_path_factory)
    result = _run_child(["model", str(gguf)], tmp_path, FUZZ_SECONDS / 2)
    assert result["runs"] > 100
    assert {"ok", "GGUFError"} <= set(result["outcomes"]), result["outcomes"]


@pytest.mark.slow
def test_mutants_start_from_an_exact_copy(tmp_path_factory):
    """The structure-aware mutator rebuilds the model byte for byte before it changes it."""
    import gguf_corpus as gc
    from engine_helpers import engine_model

    gguf, _ = engine_model(tmp_path_factory)
    assert gc.ModelParts.read(gguf).build() == gguf.read_bytes()


if __name__ == "__main__":
    main(sys.argv[1:])
