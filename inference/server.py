"""An OpenAI-compatible HTTP server for one :class:`~ternlab.inference.engine.Engine`.

Endpoints:

- ``POST /v1/completions``, ``POST /v1/chat/completions``: fields in
  :mod:`ternlab.inference.openai_api` (log-probs, echo, token-id prompts, ``n``, stop,
  seed, SSE streaming with ``"stream": true``: ``data: {json}`` per piece, ``data:
  [DONE]`` at the end, the last chunk carrying ``usage``)
- ``POST /tokenize``, ``POST /detokenize``, ``GET /tokenizer_info``: the model's
  tokenizer (the endpoints lm-eval's ``tokenizer_backend=remote`` uses)
- ``GET /v1/models``, ``GET /health`` (the scheduler's slots, queue and ``stats``: time in
  forward passes and in Python, prompt and decode tokens, decode-only steps)

Requests run concurrently: the engine's KV-cache slots (``Engine(slots=N)``) are decoded
together by a :class:`~ternlab.inference.scheduler.Scheduler`, one forward pass per step
for all of them; more requests than slots wait in a bounded queue (429 when it is full).
Each HTTP connection has its own thread reading its request's events, so a slow client
delays only itself; a client that goes away has its sequences dropped.

Errors are JSON ``{"error": {"message", "type", "param", "code"}}``: 400 for a bad
request (malformed JSON, unknown fields, a prompt past the context, a ``max_tokens``
that does not fit), 404, 413 (body too large), 429, 500. The server binds 127.0.0.1
unless told otherwise.
"""

from __future__ import annotations

import json
import queue
import select
import socket
import sys
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ternlab import __version__
from ternlab.inference.engine import Engine
from ternlab.inference.openai_api import Choice, Plan, RequestError, parse, usage
from ternlab.inference.scheduler import STEP_TOKENS, QueueFull, Scheduler

MAX_BODY = 8 << 20  # bytes of request JSON accepted
POLL_S = 0.25  # how often a waiting handler checks that its client is still there


class HttpError(Exception):
    """An error answered with ``status`` (4xx) and this message."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


class Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer with the scheduler it feeds; closing it stops the scheduler."""

    daemon_threads = True
    request_queue_size = 64
    scheduler: Scheduler

    def server_close(self) -> None:
        super().server_close()
        self.scheduler.close()


def make_server(
    engine: Engine,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_queue: int = 64,
    step_tokens: int = STEP_TOKENS,
) -> Server:
    """A server for ``engine`` bound to ``host:port`` (``port=0``: any free port).

    It decodes ``engine.slots`` sequences at once; ``max_queue`` more may wait; while
    sequences decode, a step holds ``step_tokens`` tokens in all (:class:`Scheduler`).
    The server owns the engine: do not use it from other threads while the server runs.
    """
    api = _Api(engine)
    handler = type("Handler", (_Handler,), {"api": api})
    try:
        server = Server((host, port), handler)
    except OSError as e:
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.scheduler = api.scheduler = Scheduler(
        engine, max_queue=max_queue, step_tokens=step_tokens
    )
    return server


def serve(
    engine: Engine,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_queue: int = 64,
    step_tokens: int = STEP_TOKENS,
) -> None:
    """Serve until Ctrl-C."""
    server = make_server(engine, host, port, max_queue, step_tokens)
    h, p = server.server_address[:2]
    print(
        f"ternlab serve: {engine.path.name} on http://{h}:{p}/v1, {engine.slots} slot(s) of "
        f"{engine.n_ctx} tokens, queue {max_queue} (Ctrl-C stops)",
        file=sys.stderr,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class _Api:
    """The model's identity and the non-generation endpoints."""

    scheduler: Scheduler

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.model_id = engine.path.stem
        self.created = int(time.time())

    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.model_id, "object": "model",
                "created": self.created, "owned_by": "ternlab"}]}  # fmt: skip

    def health(self) -> dict:
        return ({"status": "ok", "model": self.model_id, "version": __version__,
                "n_ctx": self.engine.n_ctx, "n_vocab": self.engine.n_vocab}
                | self.scheduler.status())  # fmt: skip

    def tokenizer_info(self) -> dict:
        tok = self.engine.tokenizer
        return {
            "tokenizer_class": "ternlab",
            "bos_token": tok.token_text(tok.bos_id) or None,
            "eos_token": tok.token_text(tok.eos_id) or None,
            "pad_token": None,
            "add_bos_token": tok.add_bos,
            "model_max_length": self.engine.n_ctx,
            "chat_template": self.engine.chat_template,
        }

    def tokenize(self, body: dict) -> dict:
        _only(body, {"prompt", "add_special_tokens", "model"}, "/tokenize")
        text, special = body.get("prompt"), body.get("add_special_tokens", True)
        if not isinstance(text, str) or not isinstance(special, bool):
            raise RequestError("/tokenize needs prompt (a string), add_special_tokens (bool)")
        ids = self.engine.encode(text, None if special else False)
        return {"tokens": ids, "count": len(ids), "max_model_len": self.engine.n_ctx}

    def detokenize(self, body: dict) -> dict:
        _only(body, {"tokens", "model"}, "/detokenize")
        ids = body.get("tokens")
        n = self.engine.n_vocab
        if not isinstance(ids, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and 0 <= t < n for t in ids
        ):
            raise RequestError(f"/detokenize needs tokens: a list of ids in [0, {n})", "tokens")
        return {"prompt": self.engine.decode(ids)}


def _only(body: dict, allowed: set[str], path: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(unknown)} for POST {path}", unknown[0])


class _Handler(BaseHTTPRequestHandler):
    api: _Api
    server_version = f"ternlab/{__version__}"
    protocol_version = "HTTP/1.1"
    # Seconds a socket read or write may block: an idle keep-alive connection, a body
    # that never arrives or a streaming client that stopped reading frees its thread.
    timeout = 120

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        get = {"/health": self.api.health, "/v1/models": self.api.models,
               "/tokenizer_info": self.api.tokenizer_info}.get(path)  # fmt: skip
        if get is None:
            self._error(404, f"no such endpoint: GET {path}", "not_found_error")
        else:
            self._json(200, get())

    def _not_allowed(self) -> None:
        self.close_connection = True  # a body, if any, is not read
        self._error(405, f"{self.command} is not allowed; use GET or POST", "invalid_request_error",
                    headers={"Allow": "GET, POST"})  # fmt: skip

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _not_allowed  # noqa: N815

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """The stdlib's own errors (bad request line, headers too long, ...) as JSON."""
        self.close_connection = True
        if getattr(self, "request_version", "") in ("", "HTTP/0.9"):
            self.request_version = "HTTP/1.1"  # no request line to go by: answer in 1.1
        self.log_error("code %d, message %s", code, message)
        kind = "invalid_request_error" if code < 500 else "server_error"
        self._error(code, message or HTTPStatus(code).phrase, kind)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        kind = {"/v1/completions": "text", "/v1/chat/completions": "chat"}.get(path)
        simple = {"/tokenize": self.api.tokenize, "/detokenize": self.api.detokenize}.get(path)
        try:
            body = self._body()
            if simple is not None:
                self._json(200, simple(body))
                return
            if kind is None:
                raise HttpError(404, f"no such endpoint: POST {path}", "not_found_error")
            plan = parse(self.api.engine, kind, body)
            try:
                self.api.scheduler.submit(plan.jobs)
            except QueueFull as e:
                raise HttpError(429, str(e), "rate_limit_error") from None
            try:
                (self._stream if plan.stream else self._whole)(plan)
            finally:
                self.api.scheduler.cancel(plan.jobs)  # no-op for finished ones
        except RequestError as e:
            self._error(400, str(e), "invalid_request_error", e.param)
        except HttpError as e:
            self._error(e.status, str(e), e.kind)
        except (BrokenPipeError, ConnectionResetError, TimeoutError, _ClientGone):
            self.close_connection = True  # the client went away; its jobs are cancelled
        except Exception as e:  # the engine failed (e.g. non-finite activations)
            self._error(500, f"{type(e).__name__}: {e}", "server_error")

    # ------------------------------------------------------------- requests
    def _body(self) -> dict:
        try:
            n = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise RequestError("a JSON body with a Content-Length header is required") from None
        if n > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection is unusable
            raise HttpError(413, f"the body is {n} bytes; at most {MAX_BODY} are accepted")
        if n <= 0:
            raise RequestError(f"the body must be 1 to {MAX_BODY} bytes of JSON, got {n}")
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw)
        except RecursionError:
            raise RequestError("the body is not valid JSON: nested too deeply") from None
        except ValueError as e:  # also bad UTF-8 and integers of over 4300 digits
            raise RequestError(f"the body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise RequestError("the body must be a JSON object")
        try:  # "\ud800" is valid JSON but no text: the tokenizer would fail on it
            json.dumps(body, ensure_ascii=False).encode()
        except UnicodeEncodeError as e:
            raise RequestError(
                f"the body holds a lone UTF-16 surrogate ({e.object[e.start : e.end]!r}); "
                "strings must be valid Unicode"
            ) from None
        return body

    def _events(self, plan: Plan):
        """``(choice, event)`` until every choice is done; raises on a lost client."""
        choices = {j.index: Choice(plan, self.api.engine, j) for j in plan.jobs}
        left = len(choices)
        checked = time.monotonic()
        while left:
            try:
                ev = plan.events.get(timeout=POLL_S)
            except queue.Empty:
                ev = None
            # Also while events flow: a whole (not streamed) answer writes nothing until
            # the end, so a client that left is noticed only by looking.
            if ev is None or time.monotonic() - checked >= POLL_S:
                checked = time.monotonic()
                if self._client_gone():
                    raise _ClientGone from None
            if ev is None:
                continue
            c = choices[ev[0]]
            if ev[1] == "error":
                raise RuntimeError(ev[2])
            if ev[1] == "done":
                c.finish, c.usage = ev[2], ev[3]
                left -= 1
            yield c, ev

    def _whole(self, plan: Plan) -> None:
        done: dict[int, Choice] = {}
        for c, ev in self._events(plan):
            if ev[1] == "prompt":
                c.on_prompt(ev[2])
            elif ev[1] == "token":
                c.on_token(*ev[2:])
            else:
                done[c.job.index] = c
        choices = [done[i] for i in sorted(done)]
        out = self._envelope(plan, _rid(plan.kind), False)
        self._json(200, out | {"choices": [c.whole() for c in choices], "usage": usage(choices)})

    def _stream(self, plan: Plan) -> None:
        rid = _rid(plan.kind)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        seen: dict[int, Choice] = {}
        try:
            for c, ev in self._events(plan):
                first = c.job.index not in seen
                seen[c.job.index] = c
                if first and (plan.kind == "chat" or plan.echo):
                    # The role (chat) or the echoed prompt text comes first.
                    self._chunk(plan, rid, c.delta(c.text, [], role=plan.kind == "chat"))
                if ev[1] == "prompt":
                    self._chunk(plan, rid, c.delta("", c.on_prompt(ev[2])))
                elif ev[1] == "token":
                    new = c.on_token(*ev[2:])
                    if ev[2] or new:
                        self._chunk(plan, rid, c.delta(ev[2], new))
                else:
                    last = len([x for x in seen.values() if x.finish]) == len(plan.jobs)
                    extra = {"usage": usage(list(seen.values()))} if last else {}
                    self._chunk(plan, rid, c.delta("", [], c.finish), extra)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, _ClientGone):
            raise
        except Exception as e:
            # Headers are gone: report the failure in the stream itself.
            err = {"error": {"message": f"{type(e).__name__}: {e}", "type": "server_error"}}
            self._event(err)

    def _chunk(self, plan: Plan, rid: str, choice: dict, extra: dict | None = None) -> None:
        self._event(self._envelope(plan, rid, True) | {"choices": [choice]} | (extra or {}))

    def _envelope(self, plan: Plan, rid: str, stream: bool) -> dict:
        obj = {("chat", False): "chat.completion", ("chat", True): "chat.completion.chunk",
               ("text", False): "text_completion", ("text", True): "text_completion"}  # fmt: skip
        return {"id": rid, "object": obj[plan.kind, stream], "created": int(time.time()),
                "model": self.api.model_id}  # fmt: skip

    # ------------------------------------------------------------- writing
    def _client_gone(self) -> bool:
        """True when the client closed its end (a read would return nothing)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _event(self, obj: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
        self.wfile.flush()

    def _json(self, status: int, obj: dict, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str, param: str | None = None,
               headers: dict | None = None) -> None:  # fmt: skip
        phrase = HTTPStatus(status).phrase
        try:
            self._json(status, {"error": {"message": message, "type": kind, "param": param,
                                          "code": phrase}}, headers)  # fmt: skip
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _ClientGone(Exception):
    """The client closed the connection while its request ran."""


def _rid(kind: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
