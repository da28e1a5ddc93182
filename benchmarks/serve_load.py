"""Load test of ``ternlab serve`` on loopback: 1 client against N concurrent clients.

Starts ``ternlab serve`` as a child process (``--slots`` sequences decoded together),
then for each client count runs that many threads, each sending ``--requests`` streamed
``/v1/completions`` requests one after another (random token-id prompts of
``--prompt-tokens``, greedy, ``--max-tokens`` each; no two prompts share a prefix).
``--rounds`` repeats the client counts in turn (medians reported), so load from other
processes hits every count alike. Reports per phase: aggregate completion tokens/s over
the wall time, the decode rate (tokens after the first over the time after the first),
request latency, time to first token and inter-token gaps (p50/p99), and failed
requests. Writes JSON.

    python benchmarks/serve_load.py --shape 2b --clients 1,8 -o serve_load.json
    python benchmarks/serve_load.py -m model.gguf --slots 8 --ctx 1024
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, model: str, port: int) -> subprocess.Popen:
    main = "import sys; from ternlab.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", main, "serve", "-m", model, "--port", str(port),
           "--slots", str(args.slots), "--ctx", str(args.ctx), "-t", str(args.threads),
           "--queue", str(max(64, 2 * max(args.clients)))]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ternlab serve exited: {proc.stderr.read()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("ternlab serve did not come up in 600 s")


class EngineSteps:
    """Decode steps of 1 and of ``--slots`` sequences timed on an engine of the benchmark's
    own (``Engine.eval_batch``, without HTTP or Python scheduling): the batching ceiling.
    Timed before the first round and after each, so it sees the load the phases saw."""

    def __init__(self, model: str, args: argparse.Namespace) -> None:
        from ternlab.inference.engine import Engine

        self.n = args.slots
        self.eng = Engine(model, threads=args.threads, n_ctx=args.ctx, slots=self.n)
        for s in range(self.n):
            self.eng.eval_batch([s], [[1] * args.prompt_tokens], [False])
        self.times: dict[int, list[float]] = {1: [], self.n: []}

    def time(self, reps: int = 3) -> None:
        for _ in range(reps):
            for n in self.times:
                t0 = time.perf_counter()
                self.eng.eval_batch(list(range(n)), [[2]] * n, [False] * n)
                self.times[n].append(time.perf_counter() - t0)
                for s in range(n):  # back to the prompt: every step at the same position
                    self.eng.keep_prefix(s, len(self.eng.slot_tokens(s)) - 1)

    def summary(self) -> dict:
        med = {n: float(np.median(ts)) for n, ts in self.times.items()}
        return {
            "reps": len(self.times[1]),
            "step_s": {str(n): t for n, t in med.items()},
            "tokens_per_s": {str(n): n / t for n, t in med.items()},
            "ratio": (self.n / med[self.n]) / (1 / med[1]),
        }


def one_request(port: int, prompt: list[int], max_tokens: int) -> dict:
    """A streamed completion; times of the request, the first and every later event."""
    # logprobs 0: one event per token, even when its text is held back (byte tokens).
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "logprobs": 0}).encode()  # fmt: skip
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        return {"ok": False, "error": f"HTTP {resp.status}: {resp.read()[:200]!r}"}
    times, tokens, done = [], 0, False
    for line in resp:
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            done = True
            break
        ev = json.loads(data)
        if "error" in ev:
            return {"ok": False, "error": ev["error"]["message"]}
        lp = ev["choices"][0]["logprobs"]
        if lp and lp["tokens"]:
            times.append(time.perf_counter())
        if "usage" in ev:
            tokens = ev["usage"]["completion_tokens"]
    conn.close()
    t1 = time.perf_counter()
    if not done or not times:
        return {"ok": False, "error": "the stream ended early"}
    return {"ok": True, "tokens": tokens, "latency": t1 - t0, "ttft": times[0] - t0,
            "gaps": list(np.diff(times)), "decode_s": times[-1] - times[0]}  # fmt: skip


def phase(port: int, clients: int, requests: int, n_prompt: int, max_tokens: int, vocab: int,
          rng: random.Random) -> dict:  # fmt: skip
    prompts = [[[rng.randrange(vocab) for _ in range(n_prompt)] for _ in range(requests)]
               for _ in range(clients)]  # fmt: skip
    results: list[dict] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for p in prompts[i]:
            try:
                r = one_request(port, p, max_tokens)
            except Exception as e:  # a failed request is a result, not a crash
                r = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            with lock:
                results.append(r)

    before = health(port)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = health(port)
    d = {k: after["stats"][k] - before["stats"][k] for k in after["stats"]}
    steps = after["steps"] - before["steps"]
    ok = [r for r in results if r["ok"]]
    tokens = sum(r["tokens"] for r in ok)
    pct = lambda xs, q: float(np.percentile(xs, q)) if xs else None  # noqa: E731
    lat = [r["latency"] for r in ok]
    ttft = [r["ttft"] for r in ok]
    gaps = [g for r in ok for g in r["gaps"]]
    rates = [(r["tokens"] - 1) / r["decode_s"] for r in ok if r["decode_s"] > 0]
    return {
        "clients": clients,
        "requests": len(results),
        "failed": len(results) - len(ok),
        "errors": sorted({r["error"] for r in results if not r["ok"]})[:5],
        "wall_s": wall,
        "completion_tokens": tokens,
        "tokens_per_s": tokens / wall,
        # A sequence's decode rate after its first token (mean), and that times the clients.
        "seq_decode_tokens_per_s": float(np.mean(rates)) if rates else None,
        "aggregate_decode_tokens_per_s": float(np.mean(rates)) * clients if rates else None,
        "latency_p50_s": pct(lat, 50),
        "latency_p99_s": pct(lat, 99),
        "ttft_p50_s": pct(ttft, 50),
        "ttft_p99_s": pct(ttft, 99),
        "token_gap_p50_ms": pct(gaps, 50) and pct(gaps, 50) * 1e3,
        "token_gap_p99_ms": pct(gaps, 99) and pct(gaps, 99) * 1e3,
        # The server's own account (GET /health): its forward passes, the Python around
        # them, and steps that only decoded (no prompt tokens read alongside).
        "server": {
            "steps": steps,
            "engine_busy": d["step_s"] / wall,
            "python_ms_per_step": 1e3 * d["python_s"] / max(steps, 1),
            "prompt_tokens": d["prompt_tokens"],
            "decode_tokens": d["decode_tokens"],
            "prompt_step_share": 1 - d["decode_only_s"] / d["step_s"] if d["step_s"] else None,
            "decode_only_batch": d["decode_only_tokens"] / max(d["decode_only_steps"], 1),
        },
        "decode_only_tokens_per_s": (
            d["decode_only_tokens"] / d["decode_only_s"] if d["decode_only_s"] else None
        ),
    }


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def _http(port: int, path: str, body: bytes, timeout: float = 600) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def soak_request(port: int, kind: str, rng: random.Random, vocab: int, n_ctx: int) -> dict:
    """One request of the soak; ``ok`` when the server answered as it should."""
    prompt = [rng.randrange(vocab) for _ in range(rng.randrange(4, 129))]
    gen = rng.randrange(1, 33)
    if kind == "bad":  # the server must say 400 and carry on
        body = rng.choice([
            b"{not json", b"[" * 50_000, json.dumps({"prompt": prompt, "temprature": 0}).encode(),
            json.dumps({"prompt": prompt, "max_tokens": 10**9}).encode(),
            json.dumps({"prompt": [1] * n_ctx}).encode(), b'{"prompt": "\\ud800"}',
        ])  # fmt: skip
        status, data = _http(port, "/v1/completions", body)
        ok = status == 400 and b'"invalid_request_error"' in data
        return {"kind": kind, "ok": ok, "error": None if ok else f"HTTP {status}: {data[:200]!r}"}
    if kind == "leave":  # a streamed request whose client hangs up after a few events
        body = json.dumps({"prompt": prompt, "max_tokens": 64, "temperature": 0, "stream": True,
                           "logprobs": 0}).encode()  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=600) as s:
            s.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            got, want = b"", rng.randrange(1, 4)
            while got.count(b"data: ") < want:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        ok = got.startswith(b"HTTP/1.1 200")
        return {"kind": kind, "ok": ok, "error": None if ok else f"{got[:200]!r}"}
    if kind == "stream":
        r = one_request(port, prompt, gen)
        return {"kind": kind, "ok": r["ok"], "error": r.get("error")}
    if kind == "chat":
        path = "/v1/chat/completions"
        text = " ".join(str(rng.randrange(1000)) for _ in range(rng.randrange(2, 40)))
        body = {"messages": [{"role": "user", "content": text}], "max_tokens": gen,
                "temperature": 0.8, "seed": rng.randrange(1000), "stop": ["\n\n"]}  # fmt: skip
    elif kind == "score":  # lm-eval's log-likelihood request: echo the prompt's log-probs
        path = "/v1/completions"
        body = {"prompt": prompt, "max_tokens": 0, "echo": True, "logprobs": 1, "temperature": 0}
    else:  # "whole": n choices, sampled
        path = "/v1/completions"
        body = {"prompt": prompt, "max_tokens": gen, "n": rng.choice([1, 2]), "temperature": 1.0,
                "top_p": 0.9, "seed": rng.randrange(1000)}  # fmt: skip
    status, data = _http(port, path, json.dumps(body).encode())
    ok = status == 200 and len(json.loads(data)["choices"]) == body.get("n", 1)
    return {"kind": kind, "ok": ok, "error": None if ok else f"HTTP {status}: {data[:200]!r}"}


SOAK_KINDS = ("stream", "whole", "chat", "score", "leave", "bad")


def soak(port: int, requests: int, clients: int, vocab: int, n_ctx: int, seed: int) -> dict:
    """``requests`` mixed requests from ``clients`` threads (round-robin kinds): streamed,
    whole with ``n``, chat, echo scoring, clients hanging up mid-stream, bad requests.
    A failure is any answer other than the right one; then the server must be idle."""
    kinds = [SOAK_KINDS[i % len(SOAK_KINDS)] for i in range(requests)]
    results: list[dict] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        rng = random.Random(seed * 1000 + c)
        for kind in kinds[c::clients]:
            try:
                r = soak_request(port, kind, rng, vocab, n_ctx)
            except Exception as e:  # a failed request is a result, not a crash
                r = {"kind": kind, "ok": False, "error": f"{type(e).__name__}: {e}"}
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    deadline = time.monotonic() + 60
    while True:  # cancelled sequences leave at the next step
        h = health(port)
        if (h["active"], h["queued"]) == (0, 0) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return {
        "requests": len(results),
        "clients": clients,
        "by_kind": {k: sum(r["kind"] == k for r in results) for k in SOAK_KINDS},
        "failed": sum(not r["ok"] for r in results),
        "errors": sorted({r["error"] for r in results if not r["ok"]})[:5],
        "wall_s": wall,
        "health_after": {k: h[k] for k in ("status", "active", "queued", "steps")},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("-m", "--model", help="a GGUF file")
    src.add_argument("--shape", help="a random GGUF of this shape (benchmarks/random_gguf.py)")
    ap.add_argument("--type", default="i2_s", help="with --shape: the linear weights' type")
    ap.add_argument("--embed-type", default="q6_k", help="with --shape: the head's type")
    ap.add_argument("--arch", default="bitnet-b1.58", help="with --shape: the architecture")
    ap.add_argument("--clients", default="1,8", help="client counts, comma-separated")
    ap.add_argument("--requests", type=int, default=4, help="requests per client")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the client counts, interleaved")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--engine-steps", action="store_true",
        help="also time Engine.eval_batch decode steps of 1 and --slots sequences (the "
        "batching ceiling, without HTTP or Python scheduling)",
    )  # fmt: skip
    ap.add_argument(
        "--soak", type=int, default=0, metavar="N",
        help="after the phases, N mixed requests from the largest client count (streamed, "
        "whole with n, chat, echo scoring, clients hanging up, bad requests): none may fail",
    )  # fmt: skip
    ap.add_argument("-o", "--output", default=None, help="write the JSON here too")
    args = ap.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",")]
    model = args.model
    if args.shape:
        sys.path.insert(0, str(HERE))
        import random_gguf

        shape = random_gguf.SHAPES[args.shape]
        model = str(random_gguf.ensure_gguf(shape, args.type, args.embed_type, args.arch, 0))
    steps = EngineSteps(model, args) if args.engine_steps else None
    if steps:
        steps.time()
    port = free_port()
    load = os.getloadavg()
    proc = start_server(args, model, port)
    try:
        vocab = health(port)["n_vocab"]
        rng = random.Random(args.seed)
        one_request(port, [1] * args.prompt_tokens, 4)  # warm-up
        phases = []
        for k in range(args.rounds):  # interleaved, so load from elsewhere hits all alike
            for c in args.clients:
                r = phase(port, c, args.requests, args.prompt_tokens, args.max_tokens, vocab, rng)
                r["round"] = k
                r["loadavg_after"] = os.getloadavg()
                print(json.dumps(r), file=sys.stderr)
                phases.append(r)
            if steps:
                steps.time()
        soaked = None
        if args.soak:
            soaked = soak(port, args.soak, max(args.clients), vocab, args.ctx, args.seed)
            print(json.dumps(soaked), file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    summary = {str(c): _median([p for p in phases if p["clients"] == c]) for c in args.clients}
    base = summary.get("1")
    out = {
        "benchmark": "serve_load",
        "model": Path(model).name,
        "machine": {
            "cpu": cpu_name(),
            "logical_cpus": os.cpu_count(),
            "loadavg_at_start": load,
            "loadavg_at_end": os.getloadavg(),
        },  # fmt: skip
        "server": {"slots": args.slots, "ctx": args.ctx, "threads": args.threads},
        "workload": {
            "requests_per_client": args.requests,
            "prompt_tokens": args.prompt_tokens,
            "max_tokens": args.max_tokens,
            "greedy": True,
            "stream": True,
        },  # fmt: skip
        "engine_decode_step": steps.summary() if steps else None,
        "rounds": args.rounds,
        "phases": phases,
        "median_by_clients": summary,
        "speedup_vs_1_client": {c: _speedup(v, base) for c, v in summary.items()} if base else None,
        "soak": soaked,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    clean = all(p["failed"] == 0 for p in phases) and (not soaked or soaked["failed"] == 0)
    return 0 if clean else 1


MEDIAN_KEYS = ("tokens_per_s", "aggregate_decode_tokens_per_s", "seq_decode_tokens_per_s",
               "decode_only_tokens_per_s", "latency_p50_s", "latency_p99_s", "ttft_p50_s",
               "ttft_p99_s", "token_gap_p50_ms", "token_gap_p99_ms", "server.engine_busy",
               "server.python_ms_per_step", "server.prompt_step_share")  # fmt: skip


def _get(p: dict, key: str):
    for part in key.split("."):
        p = p[part]
    return p


def _median(ps: list[dict]) -> dict:
    out = {k: float(np.median([_get(p, k) for p in ps])) for k in MEDIAN_KEYS
           if ps and all(_get(p, k) is not None for p in ps)}  # fmt: skip
    return out | {
        "requests": sum(p["requests"] for p in ps),
        "failed": sum(p["failed"] for p in ps),
    }


def _speedup(v: dict, base: dict) -> dict:
    keys = ("tokens_per_s", "aggregate_decode_tokens_per_s", "decode_only_tokens_per_s")
    return {k: v[k] / base[k] for k in keys if v.get(k) and base.get(k)}


if __name__ == "__main__":
    raise SystemExit(main())
