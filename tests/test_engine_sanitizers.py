"""The engine's C++ under AddressSanitizer and UndefinedBehaviorSanitizer, without Python.

Every engine source except the bindings is compiled with ``-fsanitize=address,undefined``
into ``.cache/ternlab/sanitize/`` (one object per source, named by a hash of the source, the
headers and the flags, so a rerun compiles nothing and an edit recompiles only what changed)
and linked into ``tools/sanitize_driver.cpp`` and ``tools/selftest.cpp``. The driver then
opens valid files, every corruption in ``gguf_corpus``, truncations and random mutants, and
loads real models and their structure-aware mutants with ``--model``. Any sanitizer report
aborts the driver, so each run must exit 0 with a clean stderr.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gguf_corpus as gc
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "inference" / "csrc"
# The engine's sources by folder: all of the extension's but bindings/ (tools/ has the mains).
ENGINE = ("gguf", "kernels", "model")
CACHE = ROOT / ".cache" / "ternlab" / "sanitize"
CXX = os.environ.get("CXX", "g++")
FLAGS = [
    "-std=c++17",
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-pthread",
    # The loader copies the file to an exact-size heap buffer instead of mapping it, so that
    # AddressSanitizer sees a read past the end of the file (it does not watch mappings).
    "-DTERNLAB_GGUF_HEAP_COPY",
]
ENV = {
    # halt_on_error: the first report ends the run with a non-zero status.
    "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:strict_string_checks=1:"
    "detect_stack_use_after_return=1:check_initialization_order=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
REPORTS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def _engine_sources() -> list[Path]:
    """Every engine source the Python extension has, minus the bindings."""
    return sorted(p for part in ENGINE for p in (CSRC / part).rglob("*.cpp"))


def _compile(src: Path, salt: bytes) -> Path:
    key = hashlib.sha256(salt + src.read_bytes()).hexdigest()[:16]
    name = "_".join(src.relative_to(CSRC).with_suffix("").parts)  # kernels_avx2_gemm_avx2
    obj = CACHE / "obj" / f"{name}-{key}.o"
    if not obj.exists():
        tmp = obj.with_suffix(f".{os.getpid()}.tmp")
        cmd = [CXX, *FLAGS, f"-I{CSRC}", "-c", str(src), "-o", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-4000:]}"
        os.replace(tmp, obj)
    return obj


def _link(name: str, objs: list[Path]) -> Path:
    out = CACHE / "bin" / name
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    cmd = [CXX, *FLAGS, *map(str, objs), "-o", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-4000:]}"
    os.replace(tmp, out)
    return out


@pytest.fixture(scope="module")
def binaries() -> dict[str, Path]:
    """``{"driver": ..., "selftest": ...}`` built with the sanitizers (cached)."""
    if shutil.which(CXX) is None:
        pytest.skip(f"no C++ compiler {CXX!r}")
    (CACHE / "obj").mkdir(parents=True, exist_ok=True)
    (CACHE / "bin").mkdir(parents=True, exist_ok=True)
    version = subprocess.run([CXX, "--version"], capture_output=True, text=True).stdout
    headers = b"".join(p.read_bytes() for p in sorted(CSRC.rglob("*.h")))
    salt = hashlib.sha256(" ".join(FLAGS).encode() + version.encode() + headers).digest()
    engine = _engine_sources()
    tools = [CSRC / "tools" / "sanitize_driver.cpp", CSRC / "tools" / "selftest.cpp"]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        objs = list(pool.map(lambda s: _compile(s, salt), [*tools, *engine]))
    for stale in set((CACHE / "obj").glob("*.o")) - set(objs):  # earlier versions
        stale.unlink(missing_ok=True)
    driver_o, selftest_o, engine_o = objs[0], objs[1], objs[2:]
    return {
        "driver": _link("sanitize_driver", [driver_o, *engine_o]),
        "selftest": _link("selftest", [selftest_o, *engine_o]),
    }


def _run(cmd: list[str | Path], timeout: float = 300) -> str:
    """Runs a sanitized binary; it must exit 0 with no sanitizer report. Returns stdout."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **ENV},
    )
    reports = [r for r in REPORTS if r in proc.stderr]
    assert proc.returncode == 0 and not reports, (
        f"exit {proc.returncode}, reports {reports}\n{proc.stderr[-8000:]}\n{proc.stdout[-2000:]}"
    )
    return proc.stdout


def _results(stdout: str) -> dict[str, str]:
    """Driver output -> {file: "OK" | "ERR <kind>"}."""
    out = {}
    for line in stdout.splitlines():
        status, rest = line.split(" ", 1)
        if status == "OK":
            out[rest.split(" ", 1)[0]] = "OK"
        else:
            kind, rest = rest.split(" ", 1)
            out[rest.split(": ", 1)[0]] = f"{status} {kind}"
    return out


@pytest.mark.slow
def test_selftest_under_sanitizers(binaries):
    """The kernel self-test: every ISA against the scalar reference, 1-3 threads."""
    out = _run([binaries["selftest"]])
    assert " 0 failures" in out, out


@pytest.mark.slow
def test_gguf_corpus_under_sanitizers(binaries, tmp_path):
    """Valid files load; every corruption, cut and mutant fails cleanly with a GgufError."""
    good = {"gguf-py": tmp_path / "gguf-py.gguf", "sample": tmp_path / "sample.gguf"}
    gc.write_gguf_py(good["gguf-py"])
    data, lay = gc.sample_file()
    good["sample"].write_bytes(data)
    bad = []
    for b in gc.bad_files():
        bad.append(tmp_path / f"bad-{b.name}.gguf")
        bad[-1].write_bytes(b.data)
    for cut in gc.truncations(data, lay):
        bad.append(tmp_path / f"cut-{cut}.gguf")
        bad[-1].write_bytes(data[:cut])
    rng, seeds, mutants = np.random.default_rng(99), [data, good["gguf-py"].read_bytes()], []
    for i in range(600):
        m = seeds[i % 2]
        for _ in range(int(rng.integers(1, 5))):
            m = gc.mutate(m, rng)
        mutants.append(tmp_path / f"mut-{i}.gguf")
        mutants[-1].write_bytes(m)
    files = [*good.values(), *bad, *mutants, tmp_path / "missing.gguf", tmp_path]
    got = _results(_run([binaries["driver"], *files]))
    assert len(got) == len(files)
    assert all(got[str(p)] == "OK" for p in good.values()), got
    assert all(got[str(p)] == "ERR GgufError" for p in bad), got
    assert got[str(tmp_path)] == "ERR GgufError"
    assert {got[str(p)] for p in mutants} == {"OK", "ERR GgufError"}


@pytest.mark.slow
def test_models_under_sanitizers(binaries, tmp_path, tmp_path_factory):
    """Each exported weight type loads and evaluates; model mutants fail cleanly."""
    exports = gc.ternlab_exports(tmp_path_factory)
    for kv_type in ("f32", "f16"):
        cmd = [binaries["driver"], "--model", "--threads", "2", "--kv-type", kv_type]
        got = _results(_run([*cmd, *exports.values()]))
        assert len(got) == len(exports) and all(v == "OK" for v in got.values()), got
    parts, rng = gc.ModelParts.read(exports["i2_s"]), np.random.default_rng(7)
    raw = exports["tq2_0"].read_bytes()
    files = []
    for i in range(400):
        data = gc.model_mutant(parts, rng)
        if i % 4 == 0:  # raw byte mutations of another weight type too
            data = gc.mutate(gc.mutate(raw, rng), rng)
        files.append(tmp_path / f"m{i}.gguf")
        files[-1].write_bytes(data)
    got = _results(_run([binaries["driver"], "--model", "--threads", "2", *files]))
    assert len(got) == len(files)
    kinds = set(got.values())
    assert "OK" in kinds and "ERR GgufError" in kinds, kinds
    assert kinds <= {"OK", "ERR GgufError", "ERR invalid_argument", "ERR runtime_error"}, kinds
