"""OpenAI request fields in, scheduler jobs out; scheduler events in, OpenAI JSON out.

``/v1/completions``: ``prompt`` is a string, a list of strings, a list of token ids or a
list of token-id lists (each a prompt; choice ``i * n + j`` is sample ``j`` of prompt
``i``). ``logprobs: k`` returns ``{"tokens", "token_logprobs", "top_logprobs",
"text_offset"}`` per choice; with ``echo: true`` the prompt's text and tokens come
first (the first prompt token's log-prob is ``null``), which is how lm-eval's
``local-completions`` scores a continuation (``max_tokens`` 0 or 1).

``/v1/chat/completions``: ``messages`` rendered with the model's chat template;
``logprobs: true`` and ``top_logprobs: k`` return ``{"content": [{"token", "logprob",
"bytes", "top_logprobs"}]}``.

Both: ``max_tokens`` (chat also ``max_completion_tokens``), ``temperature`` (default 1),
``top_p``, ``top_k`` (an extension), ``n``, ``stop``, ``seed`` (choice ``j`` uses
``seed + j``), ``stream``, ``stream_options``, ``model`` and ``user`` (ignored). Unknown
fields, and penalties or biases other than their neutral values, are refused: a
request is never silently run differently from what it asked.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass

from ternlab.inference.decoding import MAX_TOP_LOGPROBS, TokenLogprob
from ternlab.inference.engine import Engine
from ternlab.inference.sampling import SamplingParams
from ternlab.inference.scheduler import Job

DEFAULT_MAX_TOKENS = 128
DEFAULT_TEMPERATURE = 1.0
MAX_N = 16
MAX_PROMPTS = 64
MAX_STOPS = 16

COMMON_FIELDS = {
    "model", "max_tokens", "temperature", "top_p", "top_k", "n", "stop", "seed", "stream",
    "stream_options", "user", "presence_penalty", "frequency_penalty", "logit_bias",
}  # fmt: skip
FIELDS = {
    "text": COMMON_FIELDS | {"prompt", "logprobs", "echo", "best_of", "suffix"},
    "chat": COMMON_FIELDS | {"messages", "max_completion_tokens", "logprobs", "top_logprobs"},
}
#: Fields accepted only at their neutral value (ternlab does not implement them).
NEUTRAL = {
    "presence_penalty": (0, 0.0, None),
    "frequency_penalty": (0, 0.0, None),
    "logit_bias": (None,),
    "best_of": (None, 1),
    "suffix": (None, ""),
}


class RequestError(ValueError):
    """A bad request: answered with status 400 and this message."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Plan:
    """A parsed request: its jobs (one per choice) and how to answer."""

    kind: str  # "text" or "chat"
    jobs: list[Job]
    events: queue.SimpleQueue
    stream: bool
    include_usage: bool
    echo: bool
    logprobs: int | None
    prompt_texts: list[str]  # per prompt, for echo
    n: int = 1  # choices per prompt


def parse(engine: Engine, kind: str, body: dict) -> Plan:
    """Validate ``body`` and build the jobs; :class:`RequestError` names the bad field."""
    unknown = sorted(set(body) - FIELDS[kind])
    if unknown:
        raise RequestError(
            f"unknown field(s) {', '.join(unknown)} for POST {_path(kind)}; accepted: "
            f"{', '.join(sorted(FIELDS[kind]))}",
            unknown[0],
        )
    for name, ok in NEUTRAL.items():
        v = body.get(name)
        if name in body and not (v in ok or (name == "logit_bias" and v == {})):
            raise RequestError(f"{name} is not supported (only its neutral value)", name)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream must be true or false", "stream")
    opts = body.get("stream_options") or {}
    if (not isinstance(opts, dict) or set(opts) - {"include_usage"}
            or not isinstance(opts.get("include_usage", False), bool)):  # fmt: skip
        raise RequestError("stream_options must be {include_usage: bool}", "stream_options")
    n = _int(body.get("n", 1), "n", 1, MAX_N)
    if kind == "chat":
        prompts, stops, echo = _chat_prompt(engine, body), engine.chat_stops(), False
        logprobs = None
        if _bool(body.get("logprobs", False), "logprobs"):
            logprobs = _int(body.get("top_logprobs", 0), "top_logprobs", 0, MAX_TOP_LOGPROBS)
        elif body.get("top_logprobs") is not None:
            raise RequestError("top_logprobs needs logprobs: true", "top_logprobs")
    else:
        prompts, stops = _text_prompts(engine, body.get("prompt")), ()
        echo = _bool(body.get("echo", False), "echo")
        lp = body.get("logprobs")
        logprobs = None if lp is None else _int(lp, "logprobs", 0, MAX_TOP_LOGPROBS)
    if len(prompts) * n > MAX_PROMPTS:
        raise RequestError(f"at most {MAX_PROMPTS} sequences a request (prompts x n)", "n")
    stops = stops + _stops(body.get("stop"))
    given = body.get("max_tokens", body.get("max_completion_tokens"))
    temperature = _num(body.get("temperature", DEFAULT_TEMPERATURE), "temperature")
    top_p = _num(body.get("top_p", 1.0), "top_p")
    top_k = _int(body.get("top_k", 0), "top_k", 0)
    seed = None if body.get("seed") is None else _int(body["seed"], "seed", 0)
    events: queue.SimpleQueue = queue.SimpleQueue()
    jobs: list[Job] = []
    for i, ids in enumerate(prompts):
        max_tokens = _max_tokens(given, len(ids), engine.n_ctx)
        parent = None
        for j in range(n):
            try:
                s = None if seed is None else seed + j
                params = SamplingParams(temperature, top_k, top_p, s)
            except ValueError as e:
                raise RequestError(str(e), str(e).split()[0]) from None
            job = Job(i * n + j, ids, max_tokens, params, stops, events, logprobs,
                      echo and logprobs is not None, parent)  # fmt: skip
            parent = parent or job
            jobs.append(job)
    include_usage = bool(opts.get("include_usage", False))
    texts = [_prompt_text(engine, ids)[0] for ids in prompts] if echo else []
    return Plan(kind, jobs, events, stream, include_usage, echo, logprobs, texts, n)


# ---------------------------------------------------------------- prompts
def _path(kind: str) -> str:
    return "/v1/chat/completions" if kind == "chat" else "/v1/completions"


def _chat_prompt(engine: Engine, body: dict) -> list[list[int]]:
    if "messages" not in body:
        raise RequestError("messages is required: a list of {role, content} objects", "messages")
    try:
        text = engine.render_chat(body["messages"])
    except ValueError as e:
        raise RequestError(str(e), "messages") from e
    ids = engine.encode(text)
    _check_ids(engine, ids, "messages")
    return [ids]


def _text_prompts(engine: Engine, p: object) -> list[list[int]]:
    what = "prompt must be a string, a list of strings, a list of token ids or a list of lists"
    if isinstance(p, str):
        items: list = [p]
    elif isinstance(p, list) and p and all(_is_id(t) for t in p):
        items = [p]
    elif isinstance(p, list) and p and all(isinstance(x, (str, list)) for x in p):
        items = p
    else:
        raise RequestError(what + " (not empty)", "prompt")
    if len(items) > MAX_PROMPTS:
        raise RequestError(f"at most {MAX_PROMPTS} prompts a request, got {len(items)}", "prompt")
    out = []
    for x in items:
        if isinstance(x, str):
            ids = engine.encode(x)
        elif x and all(_is_id(t) for t in x):
            ids = list(x)
        else:
            raise RequestError(what + " (a token list must hold integers, not be empty)", "prompt")
        _check_ids(engine, ids, "prompt")
        out.append(ids)
    return out


def _is_id(t: object) -> bool:
    return isinstance(t, int) and not isinstance(t, bool)


def _check_ids(engine: Engine, ids: list[int], field: str) -> None:
    if not ids:
        raise RequestError(f"the {field} has no tokens; give some text", field)
    bad = next((t for t in ids if not 0 <= t < engine.n_vocab), None)
    if bad is not None:
        raise RequestError(f"token id {bad} is outside the vocabulary [0, {engine.n_vocab})", field)
    if len(ids) >= engine.n_ctx:
        raise RequestError(
            f"the {field} has {len(ids)} tokens but the context holds {engine.n_ctx}; shorten "
            "it or start the server with a larger --ctx",
            field,
        )


def _max_tokens(given: object, n_prompt: int, n_ctx: int) -> int:
    room = n_ctx - n_prompt
    if given is None:
        return min(DEFAULT_MAX_TOKENS, room)
    v = _int(given, "max_tokens", 0)
    if v > room:
        raise RequestError(
            f"max_tokens = {v} with a {n_prompt}-token prompt exceeds the {n_ctx}-token "
            f"context; ask for at most {room}",
            "max_tokens",
        )
    return v


def _stops(s: object) -> tuple[str, ...]:
    if s is None:
        return ()
    if isinstance(s, str):
        return (s,)
    if isinstance(s, list) and all(isinstance(x, str) for x in s) and len(s) <= MAX_STOPS:
        return tuple(s)
    raise RequestError(f"stop must be a string or a list of at most {MAX_STOPS} strings", "stop")


def _int(v: object, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise RequestError(f"{name} must be an integer {rng}, got {v!r}", name)
    return v


def _num(v: object, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RequestError(f"{name} must be a number, got {v!r}", name)
    return float(v)


def _bool(v: object, name: str) -> bool:
    if not isinstance(v, bool):
        raise RequestError(f"{name} must be true or false, got {v!r}", name)
    return v


# ---------------------------------------------------------------- answers
def token_str(engine: Engine, token: int) -> str:
    """A token's text as log-prob entries show it (special tokens by their name)."""
    return engine.decode([token]) or engine.tokenizer.token_text(token)


def _prompt_text(engine: Engine, ids: list[int]) -> tuple[str, list[int]]:
    """The prompt's text and each token's character offset in it."""
    dec = engine.tokenizer.stream([])
    text, offsets = "", []
    for t in ids:
        offsets.append(len(text))
        text += dec.push(t)
    return text + dec.flush(), offsets


class Choice:
    """One choice's answer, built from its events."""

    def __init__(self, plan: Plan, engine: Engine, job: Job) -> None:
        self.plan, self.engine, self.job = plan, engine, job
        self.text = ""
        self.finish: str | None = None
        self.usage: dict | None = None
        self.entries: list[tuple[TokenLogprob, int]] = []  # (log-prob entry, text offset)
        self.offset = 0  # characters of raw text so far (offsets of generated tokens)
        if plan.echo:
            prompt_text = plan.prompt_texts[job.index // plan.n]
            self.text = prompt_text
            self.offset = len(prompt_text)

    def on_prompt(self, lps: list[TokenLogprob]) -> list[tuple[TokenLogprob, int]]:
        _, offsets = _prompt_text(self.engine, self.job.prompt)
        new = list(zip(lps, offsets, strict=True))
        self.entries += new
        return new

    def on_token(self, piece: str, lp: TokenLogprob | None, raw: str) -> list:
        self.text += piece
        new = []
        if lp is not None:
            new = [(lp, self.offset)]
            self.entries += new
        self.offset += len(raw)
        return new

    # OpenAI shapes
    def text_logprobs(self, entries: list[tuple[TokenLogprob, int]]) -> dict:
        e = self.engine
        return {
            "tokens": [token_str(e, lp.token) for lp, _ in entries],
            "token_logprobs": [lp.logprob for lp, _ in entries],
            "top_logprobs": [
                None if lp.logprob is None else {token_str(e, t): v for t, v in lp.top}
                for lp, _ in entries
            ],
            "text_offset": [o for _, o in entries],
        }

    def chat_logprobs(self, entries: list[tuple[TokenLogprob, int]]) -> dict:
        def item(t: int, v: float) -> dict:
            s = token_str(self.engine, t)
            return {"token": s, "logprob": v, "bytes": list(s.encode())}

        return {
            "content": [
                item(lp.token, lp.logprob) | {"top_logprobs": [item(t, v) for t, v in lp.top]}
                for lp, _ in entries
            ]
        }

    def logprobs(self, entries: list[tuple[TokenLogprob, int]]) -> dict | None:
        if self.plan.logprobs is None:
            return None
        if self.plan.kind == "chat":
            return self.chat_logprobs(entries)
        return self.text_logprobs(entries)

    def whole(self) -> dict:
        """The choice of a non-streamed answer."""
        lps = self.logprobs(self.entries)
        if self.plan.kind == "chat":
            msg = {"role": "assistant", "content": self.text}
            return {"index": self.job.index, "message": msg, "logprobs": lps,
                    "finish_reason": self.finish}  # fmt: skip
        return {"index": self.job.index, "text": self.text, "logprobs": lps,
                "finish_reason": self.finish}  # fmt: skip

    def delta(
        self, text: str, entries: list, finish: str | None = None, role: bool = False
    ) -> dict:
        """The choice of one streamed chunk."""
        lps = self.logprobs(entries) if entries else None
        if self.plan.kind == "chat":
            d = {"content": text} if text or role else {}
            if role:
                d = {"role": "assistant"} | d
            return {"index": self.job.index, "delta": d, "logprobs": lps, "finish_reason": finish}
        return {"index": self.job.index, "text": text, "logprobs": lps, "finish_reason": finish}


def usage(choices: list[Choice]) -> dict:
    """Token counts of a whole request (each prompt counted once, as OpenAI does)."""
    prompts: dict[int, int] = {}
    cached: dict[int, int] = {}
    done = 0
    for c in choices:
        key = id(c.job.parent or c.job)
        u = c.usage or {}
        prompts[key] = len(c.job.prompt)
        cached[key] = max(cached.get(key, 0), u.get("cached_tokens", 0))
        done += u.get("completion_tokens", 0)
    p = sum(prompts.values())
    return {
        "prompt_tokens": p,
        "completion_tokens": done,
        "total_tokens": p + done,
        "prompt_tokens_details": {"cached_tokens": sum(cached.values())},
    }
