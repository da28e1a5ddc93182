"""The engine's kernels on aarch64 (NEON), from an x86 host: cross-compiled, run under qemu-user.

``tools/selftest.cpp`` and every engine source except the bindings are compiled with
``aarch64-linux-gnu-g++`` (the extension's flags at ``-O2``) into ``.cache/ternlab/aarch64/``,
one object per source named by a hash of the source, the headers, the flags and the compiler
(a rerun compiles nothing, an edit recompiles what changed), and linked statically. The
self-test then checks every kernel family on every ISA the emulated CPU has (``scalar``,
``neon`` and, where the CPU has the ARMv8.2 dot product, ``neondot``) against the scalar
reference: bit-exact for the integer paths, within stated
rounding bounds for the float ones (see the comment at the top of ``selftest.cpp``).

Needs Debian's ``g++-aarch64-linux-gnu`` and ``qemu-user`` (``.ci/run`` installs them);
skips without them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "inference" / "csrc"
# The engine's sources by folder: all of the extension's but bindings/ (tools/ has the mains).
ENGINE = ("gguf", "kernels", "model")
CACHE = ROOT / ".cache" / "ternlab" / "aarch64"
CXX = "aarch64-linux-gnu-g++"
QEMU = "qemu-aarch64"
# setup.py's flags (-ffp-contract=off matters: GCC fuses a * b + c on aarch64 by default),
# at -O2 to keep the cold cross-compile short.
FLAGS = ["-std=c++17", "-O2", "-ffp-contract=off", "-pthread"]
# Every family the self-test checks on the NEON ISAs (its "isa neon:" and "isa neondot:" lines).
NEON_FAMILIES = (
    "ternary-bits2",
    "ternary-base3",
    "quant",
    "q6k",
    "q4_0",
    "q8_0",
    "attention",
    "attention-f16",
)


def _sources() -> list[Path]:
    engine = sorted(p for part in ENGINE for p in (CSRC / part).rglob("*.cpp"))
    return [CSRC / "tools" / "selftest.cpp", *engine]


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


@pytest.fixture(scope="module")
def selftest() -> Path:
    """The aarch64 self-test binary (static), built or taken from the cache."""
    missing = [tool for tool in (CXX, QEMU) if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not found: install Debian's g++-aarch64-linux-gnu and "
            "qemu-user (apt-get install g++-aarch64-linux-gnu qemu-user) to test the NEON kernels"
        )
    (CACHE / "obj").mkdir(parents=True, exist_ok=True)
    (CACHE / "bin").mkdir(parents=True, exist_ok=True)
    version = subprocess.run([CXX, "--version"], capture_output=True, text=True).stdout
    headers = b"".join(p.read_bytes() for p in sorted(CSRC.rglob("*.h")))
    salt = hashlib.sha256(" ".join(FLAGS).encode() + version.encode() + headers).digest()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        objs = list(pool.map(lambda s: _compile(s, salt), _sources()))
    for stale in set((CACHE / "obj").glob("*.o")) - set(objs):  # earlier versions
        stale.unlink(missing_ok=True)
    key = hashlib.sha256("".join(o.name for o in objs).encode()).hexdigest()[:16]
    binary = CACHE / "bin" / f"selftest-{key}"
    if not binary.exists():
        for old in (CACHE / "bin").glob("selftest-*"):
            old.unlink(missing_ok=True)
        tmp = binary.with_suffix(f".{os.getpid()}.tmp")
        cmd = [CXX, "-static", "-pthread", *map(str, objs), "-o", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-4000:]}"
        os.replace(tmp, binary)
    return binary


def _run_selftest(binary: Path, cpu: str) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The self-test under ``qemu-aarch64 -cpu <cpu>``: its ISAs and checks per ISA and family."""
    proc = subprocess.run(
        [QEMU, "-cpu", cpu, str(binary)], capture_output=True, text=True, timeout=300
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    summary = re.search(r"selftest: ISAs \[ (.*)\] (\d+) checks, (\d+) failures", out)
    assert summary, out[-4000:]
    assert summary.group(3) == "0", out[-8000:]
    counts = {
        m.group(1): {k: int(v) for k, v in (item.split("=") for item in m.group(2).split())}
        for m in re.finditer(r"^isa (\w+):(.*)$", out, re.M)
    }
    return summary.group(1).split(), counts


@pytest.mark.slow
def test_neon_kernels_match_the_scalar_reference_under_qemu(selftest):
    """Every kernel family on NEON and on NEON with the dot product (qemu's ``max`` CPU has
    it) against the scalar reference."""
    isas, counts = _run_selftest(selftest, "max")
    assert isas == ["scalar", "neon", "neondot"], isas
    for isa in ("neon", "neondot"):
        for family in NEON_FAMILIES:
            assert counts[isa].get(family, 0) > 0, f"no {family} checks on {isa}: {counts[isa]}"


@pytest.mark.slow
def test_a_cpu_without_the_dot_product_runs_plain_neon(selftest):
    """A Cortex-A72 (Raspberry Pi 4) has no sdot: neondot is not offered, and the baseline
    kernels run without it (an sdot there would be SIGILL, not a pass)."""
    isas, counts = _run_selftest(selftest, "cortex-a72")
    assert isas == ["scalar", "neon"], isas
    for family in NEON_FAMILIES:
        assert counts["neon"].get(family, 0) > 0, f"no {family} checks on neon: {counts['neon']}"
