"""The OpenAI-compatible server on an ephemeral port, spoken to over real HTTP."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from engine_helpers import engine_model

from ternlab.inference.engine import Engine
from ternlab.inference.server import make_server


@pytest.fixture(scope="module")
def eng(tmp_path_factory) -> Engine:
    return Engine(engine_model(tmp_path_factory)[0], threads=1)


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Engine:
    """The server's own engine (it owns it while serving); ``eng`` is the reference."""
    return Engine(engine_model(tmp_path_factory)[0], threads=1, slots=3)


@pytest.fixture(scope="module")
def url(srv):
    server = make_server(srv, "127.0.0.1", 0, max_queue=8)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


def _request(url: str, path: str, body: object = None, raw: bytes | None = None):
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="GET" if data is None else "POST")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def _post(url: str, path: str, body: object) -> tuple[int, dict]:
    status, _, text = _request(url, path, body)
    return status, json.loads(text)


def _events(text: str) -> list:
    """The ``data:`` payloads of an SSE body, ``[DONE]`` kept as a string."""
    blocks = [b for b in text.split("\n\n") if b]
    assert all(b.startswith("data: ") for b in blocks), text
    return [b[6:] if b[6:] == "[DONE]" else json.loads(b[6:]) for b in blocks]


def _greedy(eng: Engine, prompt: str, n: int, stop=()) -> tuple[str, object]:
    text = "".join(eng.generate(prompt, max_tokens=n, stop=stop))
    return text, eng.last


def test_health_and_models(url, eng):
    status, ctype, text = _request(url, "/health")
    assert status == 200 and ctype == "application/json" and json.loads(text)["status"] == "ok"
    status, _, text = _request(url, "/v1/models")
    assert status == 200 and json.loads(text)["data"][0]["id"] == eng.path.stem


def test_completion(url, eng):
    status, r = _post(url, "/v1/completions", {"prompt": "5+5=", "max_tokens": 9, "temperature": 0})
    want, st = _greedy(eng, "5+5=", 9)
    assert status == 200 and r["object"] == "text_completion"
    assert r["choices"][0]["text"] == want
    assert r["choices"][0]["finish_reason"] == st.finish_reason
    assert r["usage"] | {"prompt_tokens_details": None} == {
        "prompt_tokens": st.prompt_tokens,
        "completion_tokens": st.completion_tokens,
        "total_tokens": st.prompt_tokens + st.completion_tokens,
        "prompt_tokens_details": None,
    }


def test_streamed_completion_equals_the_whole(url, eng):
    body = {"prompt": ["2+9="], "max_tokens": 12, "temperature": 0, "stream": True}
    status, ctype, text = _request(url, "/v1/completions", body)
    assert status == 200 and ctype == "text/event-stream"
    events = _events(text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    want, st = _greedy(eng, "2+9=", 12)
    assert "".join(c["choices"][0]["text"] for c in chunks) == want
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == st.finish_reason
    assert chunks[-1]["usage"]["completion_tokens"] == st.completion_tokens
    assert len({c["id"] for c in chunks}) == 1


def test_sampling_fields_are_used(url):
    body = {"prompt": "1+", "max_tokens": 16, "temperature": 1.3, "top_k": 50, "top_p": 0.9}
    a = _post(url, "/v1/completions", body | {"seed": 5})[1]["choices"][0]["text"]
    b = _post(url, "/v1/completions", body | {"seed": 5})[1]["choices"][0]["text"]
    c = _post(url, "/v1/completions", body | {"seed": 6})[1]["choices"][0]["text"]
    assert a == b and a != c


def test_stop_field(url, eng):
    free, _ = _greedy(eng, "3+4=", 20)
    stop = free[2:4]
    body = {"prompt": "3+4=", "max_tokens": 20, "temperature": 0, "stop": stop}
    r = _post(url, "/v1/completions", body)[1]
    assert r["choices"][0]["text"] == free[: free.index(stop)]
    assert r["choices"][0]["finish_reason"] == "stop"


def test_chat_completion(url, eng):
    msgs = [{"role": "system", "content": "Add."}, {"role": "user", "content": "1+6="}]
    body = {"model": "anything", "messages": msgs, "max_tokens": 10, "temperature": 0}
    status, r = _post(url, "/v1/chat/completions", body)
    want, st = _greedy(eng, eng.render_chat(msgs), 10, eng.chat_stops())
    assert status == 200 and r["object"] == "chat.completion"
    assert r["choices"][0]["message"] == {"role": "assistant", "content": want}
    assert r["usage"]["prompt_tokens"] == st.prompt_tokens

    status, _, text = _request(url, "/v1/chat/completions", body | {"stream": True})
    events = _events(text)
    assert status == 200 and events[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas) == want
    assert events[-2]["choices"][0]["finish_reason"] == st.finish_reason
    assert all(e["object"] == "chat.completion.chunk" for e in events[:-1])


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/v1/completions", b"{not json", "not valid JSON"),
        ("/v1/completions", b"[1, 2]", "JSON object"),
        ("/v1/completions", {"prompt": 3}, "prompt"),
        ("/v1/completions", {"prompt": "x", "temperature": "hot"}, "temperature"),
        ("/v1/completions", {"prompt": "x", "top_p": 0}, "top_p"),
        ("/v1/completions", {"prompt": "x", "max_tokens": -2}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "stop": [1]}, "stop"),
        ("/v1/completions", {"prompt": "x", "n": 17}, "n must be"),
        ("/v1/completions", {"prompt": "x", "best_of": 3}, "best_of"),
        ("/v1/completions", {"prompt": "x", "temprature": 0}, "unknown field(s) temprature"),
        ("/v1/chat/completions", {"messages": [], "echo": True}, "unknown field(s) echo"),
        ("/v1/completions", {"prompt": "x", "logprobs": 21}, "logprobs"),
        ("/v1/completions", {"prompt": []}, "prompt"),
        ("/v1/completions", {"prompt": [[1, 2], []]}, "prompt"),
        ("/v1/completions", {"prompt": [5, 100000]}, "vocabulary"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 10**9}, "exceeds the 256-token"),
        ("/v1/completions", {"prompt": [1] * 256, "max_tokens": 0}, "context holds 256"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
            "top_logprobs",
        ),  # fmt: skip
        ("/v1/completions", {"prompt": "x", "stream": "yes"}, "stream"),
        ("/v1/completions", {"prompt": "1+1=2 " * 200}, "context"),
        ("/v1/chat/completions", {"messages": [{"role": "bot", "content": "x"}]}, "role"),
        ("/v1/chat/completions", {"prompt": "x"}, "messages"),
    ],
)
def test_bad_requests_are_400_with_a_message(url, path, body, words):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, ctype, text = _request(url, path, raw=raw)
    assert status == 400 and ctype == "application/json"
    err = json.loads(text)["error"]
    assert words in err["message"] and err["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"prompt": "x", "max_tokens": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"prompt": "\\ud800 lone surrogate"}', "surrogate"),
        (b'{"messages": [{"role": "user", "content": "\\udfff"}]}', "surrogate"),
        (b'{"prompt": "x", "stream": true, "stream_options": {"include_usage": 1}}',
         "include_usage"),
    ],
    ids=["deep-nesting", "huge-integer", "surrogate-prompt", "surrogate-chat", "stream-options"],
)  # fmt: skip
def test_hostile_json_is_400_not_500(url, raw, words):
    path = "/v1/chat/completions" if b"messages" in raw else "/v1/completions"
    status, ctype, text = _request(url, path, raw=raw)
    assert (status, ctype) == (400, "application/json"), text
    assert words in json.loads(text)["error"]["message"]
    assert _health(url)["status"] == "ok"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405_json(url, method):
    req = urllib.request.Request(url + "/v1/completions", data=b"{}", method=method)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == 405 and e.value.headers["Allow"] == "GET, POST"
    assert "not allowed" in json.loads(e.value.read())["error"]["message"]


def test_a_malformed_request_line_is_400_json_and_the_server_stays_up(url):
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(b"\x16\x03\x01 not http\r\n\r\n")  # e.g. TLS to a plain-HTTP port
        raw = _read_until(s, b"}}")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert _health(url)["status"] == "ok"


def test_a_body_cut_short_is_400_and_the_server_stays_up(url):
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                  b'{"prompt": "1+')  # fmt: skip
        s.shutdown(socket.SHUT_WR)  # the client gives up half way through its body
        raw = _read_until(s, b"}}")
    assert raw.startswith(b"HTTP/1.1 400") and b"not valid JSON" in raw
    assert _health(url)["status"] == "ok"


def test_unknown_path_is_404(url):
    status, _, text = _request(url, "/v1/nothing", {"prompt": "x"})
    assert status == 404 and "no such endpoint" in json.loads(text)["error"]["message"]


def _health(url: str) -> dict:
    return json.loads(_request(url, "/health")[2])


def test_concurrent_requests_are_decoded_together(url, eng):
    prompts = ["8+1=", "17+25=", "3+3=", "90+9=", "1+1=", "44+4="]  # more than the 3 slots
    want = [_greedy(eng, p, 24)[0] for p in prompts]
    steps = _health(url)["steps"]
    body = {"max_tokens": 24, "temperature": 0}
    with ThreadPoolExecutor(len(prompts)) as pool:
        outs = list(
            pool.map(lambda p: _post(url, "/v1/completions", body | {"prompt": p}), prompts)
        )
    assert all(s == 200 for s, _ in outs)
    # Each text is what the sequence gives alone (its logits in a batch are its own).
    assert [r["choices"][0]["text"] for _, r in outs] == want
    tokens = sum(r["usage"]["completion_tokens"] for _, r in outs)
    assert _health(url)["steps"] - steps < tokens  # several sequences a forward pass


def test_health_accounts_for_the_scheduler_time(url):
    before = _health(url)["stats"]
    body = {"prompt": ["7+7=", "1+23="], "n": 2, "max_tokens": 12, "temperature": 0}
    r = _post(url, "/v1/completions", body)[1]
    after = _health(url)["stats"]
    d = {k: after[k] - before[k] for k in after}
    # Every generated token but the last is evaluated once more, as is an EOS sampled.
    rows = sum(c["finish_reason"] == "stop" for c in r["choices"]) - len(r["choices"])
    assert d["decode_tokens"] == r["usage"]["completion_tokens"] + rows
    # Evaluated prompt tokens: each prompt at least once (less what was cached), at most
    # once a choice.
    u = r["usage"]
    low = u["prompt_tokens"] - u["prompt_tokens_details"]["cached_tokens"]
    assert 0 < low <= d["prompt_tokens"] <= 2 * u["prompt_tokens"]
    assert d["step_s"] > 0 and d["python_s"] > 0
    assert 0 <= d["decode_only_tokens"] <= d["decode_tokens"]
    assert 0 <= d["decode_only_s"] <= d["step_s"]


def _open_stream(url: str, body: dict) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].split(":")
    s = socket.create_connection((host, int(port)), timeout=60)
    data = json.dumps(body | {"stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(data), data))  # fmt: skip
    return s


def _read_until(s: socket.socket, marker: bytes, got: bytes = b"") -> bytes:
    while marker not in got:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_a_paused_streaming_client_does_not_hold_up_others(url, eng):
    body = {"prompt": "1+2=", "max_tokens": 200, "temperature": 0, "logprobs": 5}
    s = _open_stream(url, body)
    head = _read_until(s, b"data: ")  # the stream has started; now stop reading
    status, r = _post(url, "/v1/completions", {"prompt": "2+2=", "max_tokens": 8, "temperature": 0})
    assert status == 200 and r["choices"][0]["text"] == _greedy(eng, "2+2=", 8)[0]
    raw = _read_until(s, b"data: [DONE]", head)
    s.close()
    events = _events(raw.split(b"\r\n\r\n", 1)[1].decode())
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == _greedy(eng, "1+2=", 200)[0]


def test_a_client_leaving_mid_stream_frees_its_slot(url, eng):
    s = _open_stream(url, {"prompt": "5+", "max_tokens": 240, "temperature": 0, "logprobs": 20})
    _read_until(s, b"data: ")
    s.close()
    deadline = time.monotonic() + 30
    while _health(url)["active"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _health(url)["active"] == 0
    status, r = _post(url, "/v1/completions", {"prompt": "4+4=", "max_tokens": 5, "temperature": 0})
    assert status == 200 and r["choices"][0]["text"] == _greedy(eng, "4+4=", 5)[0]


@pytest.fixture
def slow(srv, monkeypatch):
    """Steps of the server's engine take 40 ms more: requests last long enough to leave."""
    fast = srv.eval_batch

    def eval_batch(*args):
        time.sleep(0.04)
        return fast(*args)

    monkeypatch.setattr(srv, "eval_batch", eval_batch)


def _wait_idle(url: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = _health(url)
        if h["active"] == 0 and h["queued"] == 0:
            break
        time.sleep(0.02)
    return h


def test_a_client_leaving_a_whole_request_frees_its_slot(url, eng, slow):
    # Not streamed: tokens keep arriving for the handler, yet it notices the client left.
    host, port = url.rsplit("/", 1)[-1].split(":")
    s = socket.create_connection((host, int(port)), timeout=60)
    data = json.dumps({"prompt": "6+", "max_tokens": 200, "temperature": 0}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
              % (len(data), data))  # fmt: skip
    steps = _health(url)["steps"]
    while _health(url)["steps"] < steps + 5:  # it is decoding (200 steps would take 8 s)
        time.sleep(0.02)
    s.close()
    assert _wait_idle(url, 3)["active"] == 0
    assert _health(url)["steps"] - steps < 100
    status, r = _post(url, "/v1/completions", {"prompt": "4+4=", "max_tokens": 5, "temperature": 0})
    assert status == 200 and r["choices"][0]["text"] == _greedy(eng, "4+4=", 5)[0]


def test_a_queued_client_leaving_is_dropped_from_the_queue(url, slow):
    busy = [_open_stream(url, {"prompt": f"{i}+", "max_tokens": 200, "temperature": 0})
            for i in range(3)]  # fmt: skip
    for s in busy:
        _read_until(s, b"data: ")  # the 3 slots are taken
    waiting = _open_stream(url, {"prompt": "9+", "max_tokens": 5, "temperature": 0, "n": 2})
    deadline = time.monotonic() + 10
    while _health(url)["queued"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _health(url)["queued"] == 2
    waiting.close()
    deadline = time.monotonic() + 3
    while _health(url)["queued"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _health(url)["queued"] == 0 and _health(url)["active"] == 3
    for s in busy:
        s.close()
    assert _wait_idle(url, 3)["active"] == 0


def test_many_clients_leaving_at_random_points_leave_the_server_well(url, eng):
    """A small soak: 12 clients at once (8 sequences: slots plus queue hold them all); a
    third hang up mid-stream (FIN or reset), a third send a bad request, a third finish.
    Every finished answer is right, and nothing is left running or queued."""
    import random

    rng = random.Random(0)
    prompts = [f"{i}+{i * 7 % 10}=" for i in range(12)]
    want = {p: _greedy(eng, p, 16)[0] for p in prompts}

    def client(i: int) -> str:
        p = prompts[i]
        if i % 3 == 0:  # leaves after a few events
            s = _open_stream(url, {"prompt": p, "max_tokens": 200, "temperature": 0,
                                   "logprobs": 20})  # fmt: skip
            got, events = b"", rng.randrange(1, 6)
            while got.count(b"data: ") < events:
                got = _read_until(s, b"\n\n", got + s.recv(1))
            if i % 2:  # a reset instead of a clean close
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            return "left"
        if i % 3 == 1:
            status, r = _post(url, "/v1/completions", {"prompt": p, "max_tokens": 10**6})
            return f"{status} {r['error']['param']}"
        status, r = _post(url, "/v1/completions",
                          {"prompt": p, "max_tokens": 16, "temperature": 0})  # fmt: skip
        return "ok" if status == 200 and r["choices"][0]["text"] == want[p] else f"{status} {r}"

    with ThreadPoolExecutor(12) as pool:
        outs = list(pool.map(client, range(12)))
    assert outs == ["left", "400 max_tokens", "ok"] * 4
    h = _wait_idle(url, 10)
    assert (h["status"], h["active"], h["queued"]) == ("ok", 0, 0)


def test_a_full_queue_is_429_and_the_server_stays_up(url):
    status, r = _post(url, "/v1/completions", {"prompt": "1", "n": 9, "max_tokens": 1})
    assert status == 429 and "queue is full" in r["error"]["message"]
    assert _health(url)["status"] == "ok"


def test_an_oversized_body_is_413(url):
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n")
        raw = _read_until(s, b"}}")
    assert raw.startswith(b"HTTP/1.1 413") and b"at most" in raw
    assert _health(url)["status"] == "ok"


# ------------------------------------------------------------ OpenAI fields
def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_token_prompts_and_n_choices(url, eng):
    a, b = eng.encode("6+1="), eng.encode("2+30=")
    body = {"prompt": [a, b], "n": 2, "max_tokens": 10, "temperature": 0}
    status, r = _post(url, "/v1/completions", body)
    assert status == 200 and [c["index"] for c in r["choices"]] == [0, 1, 2, 3]
    texts = [c["text"] for c in r["choices"]]
    assert texts == [_greedy(eng, a, 10)[0]] * 2 + [_greedy(eng, b, 10)[0]] * 2
    assert r["usage"]["prompt_tokens"] == len(a) + len(b)  # each prompt counted once
    # Seeded sampling: choice j uses seed + j, as Engine.generate(seed=seed + j).
    body = {"prompt": "1+", "n": 2, "max_tokens": 12, "temperature": 1.2, "seed": 7}
    got = [c["text"] for c in _post(url, "/v1/completions", body)[1]["choices"]]
    kw = {"max_tokens": 12, "temperature": 1.2}
    assert got == ["".join(eng.generate("1+", seed=s, **kw)) for s in (7, 8)]


def test_echo_with_logprobs_is_what_lm_eval_reads(url, eng):
    ids = eng.encode("12+30=42\n7+8=15")
    body = {"prompt": [ids], "max_tokens": 1, "temperature": 0, "logprobs": 3, "echo": True,
            "seed": 1234, "model": "x"}  # fmt: skip
    status, r = _post(url, "/v1/completions", body)
    assert status == 200
    c = r["choices"][0]
    lp = c["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(ids) + 1
    want = _log_softmax(eng.logits(ids))
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    for i in range(1, len(ids)):  # exact: the same float64 log-softmax of the same logits
        assert lp["token_logprobs"][i] == want[i - 1, ids[i]]
        top = lp["top_logprobs"][i]
        assert len(top) == 3 and max(top.values()) == want[i - 1].max()
    nxt = int(np.argmax(want[-1]))
    assert lp["token_logprobs"][-1] == want[-1, nxt]
    prompt_text = eng.decode(ids)
    assert c["text"] == prompt_text + eng.decode([nxt])
    offs = lp["text_offset"]
    assert offs == sorted(offs) and offs[0] == 0 and offs[-1] == len(prompt_text)
    # max_tokens 0: only the prompt.
    r0 = _post(url, "/v1/completions", body | {"max_tokens": 0})[1]["choices"][0]
    assert (
        r0["text"] == prompt_text and r0["logprobs"]["token_logprobs"] == lp["token_logprobs"][:-1]
    )


def test_chat_logprobs(url, eng):
    msgs = [{"role": "user", "content": "3+9="}]
    body = {"messages": msgs, "max_tokens": 6, "temperature": 0, "logprobs": True,
            "top_logprobs": 2}  # fmt: skip
    r = _post(url, "/v1/chat/completions", body)[1]["choices"][0]
    content = r["logprobs"]["content"]
    want, st = _greedy(eng, eng.render_chat(msgs), 6, eng.chat_stops())
    assert r["message"]["content"] == want and len(content) == st.completion_tokens
    for item in content:
        assert len(item["top_logprobs"]) == 2
        assert item["logprob"] == item["top_logprobs"][0]["logprob"]  # greedy: the best one
        assert bytes(item["bytes"]).decode() == item["token"]


def test_tokenizer_endpoints(url, eng):
    status, r = _post(url, "/tokenize", {"prompt": "7+8=15", "add_special_tokens": False})
    assert status == 200 and r["tokens"] == eng.encode("7+8=15", add_bos=False)
    assert _post(url, "/detokenize", {"tokens": r["tokens"]})[1]["prompt"] == "7+8=15"
    info = json.loads(_request(url, "/tokenizer_info")[2])
    assert info["eos_token"] == eng.tokenizer.token_text(eng.eos_id)
    assert _post(url, "/tokenize", {"text": "x"})[0] == 400


def test_ternlab_serve_takes_slots_and_context(tmp_path_factory):
    import re
    import subprocess
    import sys

    path = engine_model(tmp_path_factory)[0]
    main = "import sys; from ternlab.cli import main; sys.exit(main())"
    args = ["serve", "-m", str(path), "--slots", "2", "--ctx", "64", "--port", "0", "-t", "1"]
    cmd = [sys.executable, "-c", main, *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        m = re.search(r"http://([\d.]+):(\d+)/v1, 2 slot\(s\) of 64 tokens", line)
        assert m, line
        health = _health(f"http://{m[1]}:{m[2]}")
        assert (health["slots"], health["n_ctx"]) == (2, 64)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_echo_requests_sharing_a_context_evaluate_it_once(url, eng):
    ctx = eng.encode("40+2=42\n11+11=")
    a, b = ctx + eng.encode("22", add_bos=False), ctx + eng.encode("23\n", add_bos=False)
    body = {"max_tokens": 1, "temperature": 0, "logprobs": 1, "echo": True}
    r = [_post(url, "/v1/completions", body | {"prompt": p})[1] for p in (a, a[:2], b)]
    assert r[2]["usage"]["prompt_tokens_details"]["cached_tokens"] == len(ctx) - 1
    want = _log_softmax(eng.logits(b))
    got = r[2]["choices"][0]["logprobs"]["token_logprobs"]
    assert got[1:-1] == [want[i - 1, b[i]] for i in range(1, len(b))]
    # Other alternatives (k) are not in the cache: everything is evaluated again.
    r = _post(url, "/v1/completions", body | {"prompt": a, "logprobs": 2})[1]
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
