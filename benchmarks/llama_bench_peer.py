"""A llama.cpp-family binary (its ``llama-bench``) as a peer engine of engine_vs_llamacpp.py.

bitnet.cpp and ik_llama.cpp are llama.cpp forks, each with its own ``llama-bench``; a
llama.cpp built with other options (say AVX2 only) is one too. Given the binary's path,
:class:`LlamaBenchRunner` runs it once per timed run (``-r 1 -o json``) and takes the
binary's own timing of that run (model load and warm-up excluded), so the peer is
measured in the same sitting as ternlab, interleaved with it run by run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np

#: Longest a single llama-bench run may take (a 2B F16 model at 1 thread: ~1 min).
RUN_TIMEOUT_S = 900


class PeerError(RuntimeError):
    """The peer binary failed or printed something other than llama-bench JSON."""


def parse_peer(spec: str) -> tuple[str, Path]:
    """``"NAME=PATH"`` (or a bare ``PATH``, named after its folder) -> (name, binary)."""
    name, sep, path = spec.partition("=")
    binary = Path(path if sep else name).expanduser()
    if not sep:
        name = binary.parent.parent.name or binary.name
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise ValueError(f"--peer {spec!r}: {binary} is not an executable file (llama-bench)")
    if name in ("ternlab", "llama.cpp"):
        raise ValueError(f"--peer {spec!r}: the name {name!r} is taken; use NAME=PATH")
    return name, binary


def parse_llama_bench_json(text: str, n_prompt: int, n_gen: int) -> dict:
    """The record of the (n_prompt, n_gen) test in llama-bench's ``-o json`` output."""
    try:
        records = json.loads(text)
    except json.JSONDecodeError as e:
        raise PeerError(f"llama-bench printed no JSON ({e}): {text[:200]!r}") from e
    if not isinstance(records, list):
        raise PeerError(f"llama-bench JSON is not a list of tests: {text[:200]!r}")
    for rec in records:
        if rec.get("n_prompt") == n_prompt and rec.get("n_gen") == n_gen:
            if not rec.get("avg_ns"):
                raise PeerError(f"llama-bench test p{n_prompt}/n{n_gen} has no avg_ns: {rec}")
            return rec
    raise PeerError(f"llama-bench JSON has no test with n_prompt={n_prompt}, n_gen={n_gen}")


class LlamaBenchRunner:
    """One GGUF file in a peer's llama-bench: pp = ``-p N -n 0``, tg = ``-p 0 -n N``."""

    layout = None

    def __init__(self, name: str, binary: Path, path: Path, n_ctx: int):
        self.name, self.binary, self.path = name, binary, path
        self.threads = 1
        del n_ctx  # llama-bench sizes its context from -p/-n
        self._run(8, 0)  # fails here (PeerError) if the peer cannot load this file

    def set_threads(self, threads: int) -> None:
        self.threads = threads

    def _run(self, n_prompt: int, n_gen: int) -> float:
        cmd = [str(self.binary), "-m", str(self.path), "-p", str(n_prompt), "-n", str(n_gen),
               "-t", str(self.threads), "-r", "1", "-o", "json"]  # fmt: skip
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise PeerError(f"{self.name}: {' '.join(cmd)} ran past {RUN_TIMEOUT_S} s") from e
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise PeerError(f"{self.name}: {self.binary} exited {res.returncode}: {tail}")
        return parse_llama_bench_json(res.stdout, n_prompt, n_gen)["avg_ns"] / 1e9

    def pp(self, tokens: np.ndarray) -> float:
        return self._run(len(tokens), 0)

    def tg(self, tokens: np.ndarray) -> float:
        return self._run(0, len(tokens))

    def close(self) -> None:
        pass
