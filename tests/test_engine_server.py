"""The OpenAI-compatible server on an ephemeral port, spoken to over real HTTP."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from engine_helpers import engine_model

from ternlab.inference.engine import Engine
from ternlab.inference.server import make_server


@pytest.fixture(scope="module")
def eng(tmp_path_factory) -> Engine:
    return Engine(engine_model(tmp_path_factory)[0], threads=1)


@pytest.fixture(scope="module")
def url(eng):
    server = make_server(eng, "127.0.0.1", 0)
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
    assert r["usage"] == {
        "prompt_tokens": st.prompt_tokens,
        "completion_tokens": st.completion_tokens,
        "total_tokens": st.prompt_tokens + st.completion_tokens,
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
        ("/v1/completions", {"prompt": "x", "n": 2}, "n=1"),
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


def test_unknown_path_is_404(url):
    status, _, text = _request(url, "/v1/nothing", {"prompt": "x"})
    assert status == 404 and "no such endpoint" in json.loads(text)["error"]["message"]


def test_concurrent_requests_are_served_one_at_a_time(url):
    body = {"prompt": "8+1=", "max_tokens": 12, "temperature": 0}
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: _post(url, "/v1/completions", body), range(4)))
    assert all(s == 200 for s, _ in outs)
    assert len({r["choices"][0]["text"] for _, r in outs}) == 1
