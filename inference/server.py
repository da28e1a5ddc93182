"""An OpenAI-compatible HTTP server for one :class:`~ternlab.inference.engine.Engine`.

Endpoints:

- ``POST /v1/completions``: ``prompt`` (a string, or a list holding one string)
- ``POST /v1/chat/completions``: ``messages`` rendered with the model's chat template
- ``GET /v1/models``, ``GET /health``

Request fields: ``model`` (ignored: there is one model), ``max_tokens`` (chat also
``max_completion_tokens``; default 128), ``temperature`` (default 1.0, as OpenAI),
``top_p``, ``top_k`` (an extension; 0 = off), ``seed``, ``stop`` (a string or a list),
``stream``; ``n`` must be 1 if given. With ``"stream": true`` the answer is Server-Sent
Events, ``data: {json}`` per piece and ``data: [DONE]`` at the end; the last chunk carries
``finish_reason`` and ``usage``. Errors are JSON ``{"error": {"message", "type", ...}}``
with status 400 (bad request), 404 or 500.

Requests are served by threads but the engine is used by one at a time (a lock), so
a second request waits for the first to finish. The server binds 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ternlab import __version__
from ternlab.inference.engine import Engine

MAX_BODY = 8 << 20  # bytes of request JSON accepted
DEFAULT_MAX_TOKENS = 128
DEFAULT_TEMPERATURE = 1.0


class RequestError(ValueError):
    """A bad request: answered with status 400 and this message."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def make_server(engine: Engine, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """A server for ``engine`` bound to ``host:port`` (``port=0``: any free port)."""
    handler = type("Handler", (_Handler,), {"api": _Api(engine)})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.daemon_threads = True
    return server


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until Ctrl-C."""
    server = make_server(engine, host, port)
    h, p = server.server_address[:2]
    print(f"ternlab serve: {engine.path.name} on http://{h}:{p}/v1 (Ctrl-C stops)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class _Api:
    """Request parsing and the OpenAI response shapes; the engine behind a lock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self.model_id = engine.path.stem
        self.created = int(time.time())

    def models(self) -> dict:
        return {
            "object": "list",
            "data": [
                {
                    "id": self.model_id,
                    "object": "model",
                    "created": self.created,
                    "owned_by": "ternlab",
                }
            ],
        }

    def health(self) -> dict:
        return {"status": "ok", "model": self.model_id, "version": __version__}

    def prepare(self, kind: str, body: dict) -> tuple[str, dict]:
        """The prompt text and generation keywords of a request, validated."""
        if kind == "chat":
            try:
                prompt = self.engine.render_chat(body.get("messages"))
            except ValueError as e:
                raise RequestError(str(e), "messages") from e
            stops = self.engine.chat_stops()
        else:
            prompt = _prompt(body.get("prompt"))
            stops = ()
        if body.get("n", 1) != 1:
            raise RequestError("only n=1 is supported", "n")
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens", DEFAULT_MAX_TOKENS))
        kwargs = {
            "max_tokens": _int(max_tokens, "max_tokens", 0),
            "temperature": _num(body.get("temperature", DEFAULT_TEMPERATURE), "temperature"),
            "top_p": _num(body.get("top_p", 1.0), "top_p"),
            "top_k": _int(body.get("top_k", 0), "top_k", 0),
            "seed": None if body.get("seed") is None else _int(body["seed"], "seed", 0),
            "stop": stops + _stops(body.get("stop")),
        }
        return prompt, kwargs

    def run(self, prompt: str, kwargs: dict) -> Iterator[str]:
        """Generation pieces; the caller holds :attr:`lock` while iterating."""
        try:
            return self.engine.generate(prompt, **kwargs)
        except ValueError as e:  # sampling parameters, prompt too long
            raise RequestError(str(e)) from e

    def usage(self) -> dict:
        st = self.engine.last
        return {
            "prompt_tokens": st.prompt_tokens,
            "completion_tokens": st.completion_tokens,
            "total_tokens": st.prompt_tokens + st.completion_tokens,
        }

    def response(self, kind: str, rid: str, text: str) -> dict:
        finish = self.engine.last.finish_reason
        if kind == "chat":
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return self._envelope(kind, rid, False) | {"choices": [choice], "usage": self.usage()}

    def chunk(self, kind: str, rid: str, delta: dict | str | None, finish: str | None) -> dict:
        if kind == "chat":
            choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta or "", "logprobs": None, "finish_reason": finish}
        out = self._envelope(kind, rid, True) | {"choices": [choice]}
        if finish is not None:
            out["usage"] = self.usage()
        return out

    def _envelope(self, kind: str, rid: str, stream: bool) -> dict:
        obj = {
            ("chat", False): "chat.completion",
            ("chat", True): "chat.completion.chunk",
            ("text", False): "text_completion",
            ("text", True): "text_completion",
        }[kind, stream]
        return {"id": rid, "object": obj, "created": int(time.time()), "model": self.model_id}


class _Handler(BaseHTTPRequestHandler):
    api: _Api
    server_version = f"ternlab/{__version__}"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._json(200, self.api.health())
        elif path == "/v1/models":
            self._json(200, self.api.models())
        else:
            self._error(404, f"no such endpoint: GET {path}", "not_found_error")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        kind = {"/v1/completions": "text", "/v1/chat/completions": "chat"}.get(path)
        if kind is None:
            self._error(404, f"no such endpoint: POST {path}", "not_found_error")
            return
        try:
            body = self._body()
            prompt, kwargs = self.api.prepare(kind, body)
            stream = body.get("stream", False)
            if not isinstance(stream, bool):
                raise RequestError("stream must be true or false", "stream")
            with self.api.lock:
                pieces = self.api.run(prompt, kwargs)
                if stream:
                    self._stream(kind, pieces)
                else:
                    text = "".join(pieces)
                    self._json(200, self.api.response(kind, _rid(kind), text))
        except RequestError as e:
            self._error(400, str(e), "invalid_request_error", e.param)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; the generator is closed, the lock released
        except Exception as e:  # the engine failed (e.g. non-finite activations)
            self._error(500, f"{type(e).__name__}: {e}", "server_error")

    def _body(self) -> dict:
        try:
            n = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError("a JSON body with a Content-Length header is required") from None
        if not 0 < n <= MAX_BODY:
            raise RequestError(f"the body must be 1 to {MAX_BODY} bytes of JSON, got {n}")
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RequestError(f"the body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise RequestError("the body must be a JSON object")
        return body

    def _stream(self, kind: str, pieces: Iterator[str]) -> None:
        rid = _rid(kind)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            if kind == "chat":
                self._event(self.api.chunk(kind, rid, {"role": "assistant", "content": ""}, None))
            for piece in pieces:
                delta = {"content": piece} if kind == "chat" else piece
                self._event(self.api.chunk(kind, rid, delta, None))
            self._event(self.api.chunk(kind, rid, None, self.api.engine.last.finish_reason))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except Exception as e:
            if isinstance(e, (BrokenPipeError, ConnectionResetError)):
                raise
            # Headers are gone: report the failure in the stream itself.
            err = {"error": {"message": f"{type(e).__name__}: {e}", "type": "server_error"}}
            self._event(err)
        finally:
            if hasattr(pieces, "close"):
                pieces.close()

    def _event(self, obj: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
        self.wfile.flush()

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str, param: str | None = None) -> None:
        phrase = HTTPStatus(status).phrase
        self._json(status, {"error": {"message": message, "type": kind, "param": param,
                                      "code": phrase}})  # fmt: skip


def _rid(kind: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]


def _prompt(p: object) -> str:
    if isinstance(p, list) and len(p) == 1:
        p = p[0]
    if not isinstance(p, str):
        raise RequestError("prompt must be a string (or a list of one string)", "prompt")
    return p


def _stops(s: object) -> tuple[str, ...]:
    if s is None:
        return ()
    if isinstance(s, str):
        return (s,)
    if isinstance(s, list) and all(isinstance(x, str) for x in s) and len(s) <= 16:
        return tuple(s)
    raise RequestError("stop must be a string or a list of at most 16 strings", "stop")


def _int(v: object, name: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise RequestError(f"{name} must be an integer >= {lo}, got {v!r}", name)
    return v


def _num(v: object, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RequestError(f"{name} must be a number, got {v!r}", name)
    return float(v)
