"""The Python face of the CPU engine: load a GGUF file, tokenize, generate, score.

Example::

    from ternlab.inference import Engine

    eng = Engine("model.gguf", threads=2)
    for piece in eng.generate("2+3=", max_tokens=16):
        print(piece, end="", flush=True)
    print(eng.last.decode_tps, "tokens/s")

The model itself (``ternlab.inference._kernels.Model``) keeps a KV cache; the engine
remembers which tokens are in it, so a prompt that extends the previous one (the next
turn of a chat), or :meth:`Engine.logits` of token lists sharing a prefix (the choices
of a multiple-choice question), only evaluates the new tokens. ``Engine(slots=N)`` gives
the cache N slots that :meth:`Engine.eval_batch` runs together (the HTTP server's
scheduler does); the single-sequence methods use slot 0. An ``Engine`` is not
thread-safe: one thread drives it (the server's scheduler does).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ternlab.inference.chat import render_chat, stops_for
from ternlab.inference.decoding import Decoder, StopBuffer
from ternlab.inference.sampling import Sampler, SamplingParams
from ternlab.inference.tokenizer import TextTokenizer, tokenizer_from_metadata

#: Tokens evaluated per call during prefill: bounds the scratch and logits memory.
N_BATCH = 256
#: Threads when none are asked for: decoding is memory-bound, more rarely helps.
MAX_DEFAULT_THREADS = 8
#: The KV cache's value types (``Engine(kv_type=...)``, ``--kv-type``).
KV_TYPES = ("f32", "f16")


def default_threads() -> int:
    """The CPUs this process may use, at most :data:`MAX_DEFAULT_THREADS`."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_DEFAULT_THREADS))


@dataclass
class GenerationStats:
    """What the last :meth:`Engine.generate` (or :meth:`Engine.logits`) call did.

    Filled in while the generator runs; final once it is exhausted or closed.
    """

    prompt_tokens: int = 0  # tokens in the prompt, BOS included
    cached_tokens: int = 0  # of those, reused from the KV cache (not evaluated)
    completion_tokens: int = 0
    finish_reason: str | None = None  # "stop" (EOS or stop string) or "length"
    prefill_s: float = 0.0
    decode_s: float = 0.0  # sampling + single-token evaluations
    decode_evals: int = 0
    tokens: list[int] = field(default_factory=list)  # the generated ids

    @property
    def prefill_tokens(self) -> int:
        """Prompt tokens actually evaluated."""
        return self.prompt_tokens - self.cached_tokens

    @property
    def prefill_tps(self) -> float:
        """Prompt evaluation speed, tokens/s (0 when nothing was evaluated)."""
        return self.prefill_tokens / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        """Generation speed: single-token evaluations (with sampling) per second."""
        return self.decode_evals / self.decode_s if self.decode_s > 0 else 0.0


@dataclass(frozen=True)
class PerplexityResult:
    """``ppl = exp(nll)``, ``nll`` the mean negative log-likelihood (nats) of ``n_tokens``."""

    ppl: float
    nll: float
    n_tokens: int
    n_windows: int
    seconds: float


class Engine:
    """A GGUF model ready to run on the CPU.

    ``threads=None`` uses :func:`default_threads`; ``n_ctx=None`` the training context
    (``{arch}.context_length``). ``layout`` is how ternary weights are held in memory:
    ``"bits2"`` (2 bits a weight), ``"base3"`` (1.6 bits, five to a byte: 20% fewer
    bytes a token) or ``"auto"``, the one this CPU's kernels multiply fastest. The
    logits are identical in every layout. ``slots``: KV-cache slots (sequences that
    :meth:`eval_batch` runs together), each of ``n_ctx`` positions. ``kv_type``: the
    KV cache's values, ``"f32"`` or ``"f16"`` (IEEE half, rounded to nearest even as
    torch's ``.half()``: half the memory, logits within a small rounding of f32's;
    :attr:`kv_cache_bytes`). Raises
    ``FileNotFoundError`` for a missing file and ``ternlab.inference._kernels.GGUFError``
    (a ``ValueError``) for a bad one.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        n_ctx: int | None = None,
        layout: str = "auto",
        slots: int = 1,
        kv_type: str = "f32",
    ) -> None:
        from ternlab.inference import _kernels  # the C++ extension; torch-free

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such GGUF file")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if n_ctx is not None and n_ctx < 1:
            raise ValueError(f"n_ctx must be >= 1 (or None for the training context), got {n_ctx}")
        if not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots must be an integer >= 1, got {slots!r}")
        self.path = p
        if layout not in ("auto", "bits2", "base3"):
            raise ValueError(f"layout must be 'auto', 'bits2' or 'base3', got {layout!r}")
        if kv_type not in KV_TYPES:
            raise ValueError(f"kv_type must be 'f32' or 'f16', got {kv_type!r}")
        self._model = _kernels.Model(
            str(p), threads or default_threads(), n_ctx or 0, layout, slots, kv_type
        )
        self._meta: dict = dict(self._model.metadata)
        self._config: dict = dict(self._model.config)
        self.tokenizer: TextTokenizer = tokenizer_from_metadata(self._meta, str(p))
        self._slots: list[list[int]] = [[] for _ in range(slots)]  # tokens cached, per slot
        self.last = GenerationStats()

    @property
    def _cached(self) -> list[int]:
        """The tokens in slot 0, which the single-sequence methods use."""
        return self._slots[0]

    @_cached.setter
    def _cached(self, ids: list[int]) -> None:
        self._slots[0] = ids

    # ----------------------------------------------------------------- properties
    @property
    def config(self) -> dict:
        """Hyperparameters read from the file (arch, n_vocab, n_embd, n_layer, ...)."""
        return dict(self._config)

    @property
    def metadata(self) -> dict:
        """Every GGUF metadata key and its value."""
        return self._meta

    @property
    def n_vocab(self) -> int:
        return int(self._config["n_vocab"])

    @property
    def n_ctx(self) -> int:
        """The context size (KV cache length) in tokens."""
        return int(self._model.n_ctx)

    @property
    def bos_id(self) -> int | None:
        return self.tokenizer.bos_id

    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.eos_id

    @property
    def chat_template(self) -> str | None:
        """``tokenizer.chat_template`` of the file, or ``None``."""
        t = self._meta.get("tokenizer.chat_template")
        return t if isinstance(t, str) and t else None

    @property
    def file_size(self) -> int:
        return self.path.stat().st_size

    @property
    def layout(self) -> str:
        """The in-memory layout of the ternary weights: ``"bits2"`` or ``"base3"``."""
        return str(self._model.layout)

    @property
    def kv_type(self) -> str:
        """The KV cache's values: ``"f32"`` or ``"f16"``."""
        return str(self._model.kv_type)

    @property
    def kv_cache_bytes(self) -> int:
        """Bytes of the KV cache: K and V, every slot, ``n_ctx`` positions each.

        ``slots * n_ctx * n_layer * 2 * n_head_kv * head_dim`` values of 4 (f32) or 2
        (f16) bytes, allocated at load; pages are touched only as positions fill.
        """
        return int(self._model.kv_cache_bytes)

    @property
    def threads(self) -> int:
        return int(self._model.threads)

    @threads.setter
    def threads(self, n: int) -> None:
        self._model.threads = int(n)

    @property
    def slots(self) -> int:
        """KV-cache slots (sequences :meth:`eval_batch` can run together)."""
        return len(self._slots)

    @property
    def n_cached(self) -> int:
        """Tokens currently held in the KV cache."""
        return len(self._cached)

    # ------------------------------------------------------------------ tokens
    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        """Token ids of ``text`` (BOS as the file says unless ``add_bos`` is given)."""
        return self.tokenizer.encode(text, add_bos)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (special tokens left out)."""
        return self.tokenizer.decode(list(ids))

    def render_chat(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
        """The chat prompt for ``messages`` (the file's template, else the fallback)."""
        tok = self.tokenizer
        return render_chat(
            messages,
            self.chat_template,
            bos_token=tok.token_text(tok.bos_id),
            eos_token=tok.token_text(tok.eos_id),
            add_generation_prompt=add_generation_prompt,
        )

    def chat_stops(self) -> tuple[str, ...]:
        """Stop strings a chat with this model needs (the fallback template's)."""
        return stops_for(self.chat_template)

    # --------------------------------------------------------------- evaluation
    def reset(self) -> None:
        """Empty the KV cache."""
        self._model.truncate(0)
        self._cached = []

    def logits(self, tokens: Sequence[int], first: int = 0) -> np.ndarray:
        """Logits ``[T - first, n_vocab]`` of positions ``first..T-1`` of ``tokens``.

        Row ``r`` predicts ``tokens[first + r + 1]``. Positions before ``first`` whose
        tokens are already in the KV cache (the common prefix with the last call) are
        not evaluated again: the choices of a question that share its context evaluate
        it once with ``first`` at the context's last token. The logits are identical
        to those of an evaluation from an empty cache. :attr:`last` ``.cached_tokens``
        says how many were reused.
        """
        ids = self._check_tokens(tokens)
        if len(ids) == 0:
            raise ValueError("logits() needs at least one token")
        if not isinstance(first, int) or not 0 <= first < len(ids):
            raise ValueError(f"first must be in [0, {len(ids)}), got {first!r}")
        t0 = time.perf_counter()
        n = min(_common_prefix(self._cached, ids), first)
        self._model.truncate(n)
        self._cached = self._cached[:n]
        rest = ids[n:]
        out = np.concatenate([self._eval(rest[i : i + N_BATCH], True) for i in _chunks(rest)])
        self.last = GenerationStats(
            prompt_tokens=len(ids), cached_tokens=n, prefill_s=time.perf_counter() - t0
        )
        return out[first - n :]

    # ------------------------------------------------------------ several slots
    def eval_batch(
        self, seqs: Sequence[int], tokens: Sequence[Sequence[int]], all_logits: Sequence[bool]
    ) -> np.ndarray:
        """Run ``tokens[i]`` in slot ``seqs[i]`` (distinct), all in one forward pass.

        Returns logits rows in order: every row of ``tokens[i]`` where ``all_logits[i]``,
        else its last row. A sequence's rows are identical to those of evaluating it
        alone. On an error no slot changes.
        """
        lists = [[int(t) for t in ts] for ts in tokens]
        out = self._model.eval_batch(list(seqs), lists, list(all_logits))
        for s, ts in zip(seqs, lists, strict=True):
            self._slots[s].extend(ts)
        return out

    def slot_tokens(self, seq: int) -> list[int]:
        """The tokens cached in slot ``seq``, in order (a copy)."""
        return list(self._slots[seq])

    def keep_prefix(self, seq: int, n: int, source: int | None = None) -> None:
        """Slot ``seq`` := the first ``n`` cached positions of slot ``source`` (itself if None)."""
        src = seq if source is None else source
        if src == seq:
            self._model.truncate(n, seq)
        else:
            self._model.copy_seq(src, seq, n)
        self._slots[seq] = self._slots[src][:n]

    def generate(
        self,
        prompt: str | Sequence[int],
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Iterable[str] | str = (),
        add_bos: bool | None = None,
    ) -> Iterator[str]:
        """Stream the text generated after ``prompt`` (text, or token ids used as given).

        Stops at EOS/EOT, at a stop string (not included in the output), after
        ``max_tokens`` tokens or when the context is full. Sampling: see
        :mod:`ternlab.inference.sampling`. Argument errors raise at once; the
        statistics are in :attr:`last` (final when the iterator ends).
        """
        params = SamplingParams(temperature, top_k, top_p, seed)
        if not isinstance(max_tokens, int) or max_tokens < 0:
            raise ValueError(f"max_tokens must be an integer >= 0, got {max_tokens!r}")
        ids = self.encode(prompt, add_bos) if isinstance(prompt, str) else list(prompt)
        ids = self._check_tokens(ids)
        if len(ids) == 0:
            raise ValueError("the prompt is empty (no tokens); give some text or add_bos=True")
        if len(ids) >= self.n_ctx:
            raise ValueError(
                f"the prompt has {len(ids)} tokens but the context holds {self.n_ctx}; "
                "shorten it or load the model with a larger n_ctx (--ctx-size)"
            )
        stops = (stop,) if isinstance(stop, str) else tuple(stop)
        self.last = GenerationStats(prompt_tokens=len(ids))
        return self._generate(ids, max_tokens, Sampler(params), StopBuffer(stops))

    def _generate(
        self, ids: list[int], max_tokens: int, sampler: Sampler, stops: StopBuffer
    ) -> Iterator[str]:
        st = self.last
        t0 = time.perf_counter()
        logits = self._prefill(ids)
        st.prefill_s = time.perf_counter() - t0
        dec = Decoder(self.tokenizer, ids, max_tokens, sampler, stops.stops)
        st.finish_reason = "length"
        t0 = time.perf_counter()  # decode time excludes the time spent by the consumer
        while not dec.done:
            piece = dec.push(logits, len(self._cached), self.n_ctx)
            st.tokens, st.completion_tokens = dec.tokens, len(dec.tokens)
            if piece:
                st.decode_s += time.perf_counter() - t0
                if dec.done:
                    st.finish_reason = dec.finish
                yield piece
                t0 = time.perf_counter()
            if dec.done:
                break
            logits = self._eval(dec.tokens[-1:], False)
            st.decode_evals += 1
        st.decode_s += time.perf_counter() - t0
        st.finish_reason = dec.finish

    def _prefill(self, ids: list[int]) -> np.ndarray:
        """Evaluate ``ids`` reusing the cached common prefix; logits of the last token."""
        n = _common_prefix(self._cached, ids)
        n = min(n, len(ids) - 1)  # evaluate at least the last token to get its logits
        self._model.truncate(n)
        self._cached = self._cached[:n]
        self.last.cached_tokens = n
        rest = ids[n:]
        logits = None
        for i in _chunks(rest):
            logits = self._eval(rest[i : i + N_BATCH], False)
        return logits

    def _eval(self, tokens: list[int], all_logits: bool) -> np.ndarray:
        arr = np.asarray(tokens, dtype=np.int32)
        try:
            out = self._model.eval(arr, all_logits)
        finally:
            # On an error the model rolls its cache back; stay in step with it.
            self._cached = self._cached[: self._model.n_past]
        self._cached.extend(tokens)
        return out

    def _check_tokens(self, tokens: Sequence[int]) -> list[int]:
        ids = [int(t) for t in tokens]
        bad = [t for t in ids if not 0 <= t < self.n_vocab]
        if bad:
            raise ValueError(f"token id {bad[0]} is out of range for a {self.n_vocab}-token vocab")
        if len(ids) > self.n_ctx:
            raise ValueError(
                f"{len(ids)} tokens do not fit the {self.n_ctx}-token context; "
                "load the model with a larger n_ctx"
            )
        return ids

    # --------------------------------------------------------------- perplexity
    def perplexity(
        self,
        text: str | Sequence[int],
        window: int | None = None,
        stride: int | None = None,
        add_bos: bool | None = None,
    ) -> PerplexityResult:
        """Perplexity of ``text`` with a sliding window (as transformers' perplexity guide).

        Windows of ``window`` tokens (default: the context size) start every ``stride``
        tokens (default: ``window // 2``); each scores only the tokens that the previous
        window did not. With ``stride < window`` every token after the first is scored
        exactly once, with at least ``window - stride`` tokens of context; with
        ``stride == window`` (disjoint windows) the first token of each window is not
        scored, as in transformers' recipe.
        """
        ids = self.encode(text, add_bos) if isinstance(text, str) else [int(t) for t in text]
        window = window or self.n_ctx
        stride = stride or max(window // 2, 1)
        if not 2 <= window <= self.n_ctx:
            raise ValueError(f"window must be in [2, n_ctx={self.n_ctx}], got {window}")
        if not 1 <= stride <= window:
            raise ValueError(f"stride must be in [1, window={window}], got {stride}")
        ids = self._check_tokens(ids)
        if len(ids) < 2:
            raise ValueError("perplexity needs at least 2 tokens")
        t0 = time.perf_counter()
        nll, count, n_windows = 0.0, 0, 0
        for begin, end, first in sliding_windows(len(ids), window, stride):
            nll += self._window_nll(ids[begin:end], first - begin)
            count += end - first
            n_windows += 1
        mean = nll / count
        return PerplexityResult(math.exp(mean), mean, count, n_windows, time.perf_counter() - t0)

    def _window_nll(self, ids: list[int], first: int) -> float:
        """``-sum log p(ids[j] | ids[:j])`` for ``j >= first``, from an empty cache.

        Chunk by chunk, so only ``N_BATCH`` rows of logits exist at a time.
        """
        self.reset()
        nll = 0.0
        for i in _chunks(ids):
            chunk = ids[i : i + N_BATCH]
            # Row r of this chunk predicts ids[i + r + 1]; keep rows whose target is scored.
            lo, hi = max(first - 1 - i, 0), min(len(ids) - 1 - i, len(chunk))
            logits = self._eval(chunk, lo < hi)
            if lo < hi:
                nll += float(_nll_rows(logits[lo:hi], ids[i + 1 + lo : i + 1 + hi]).sum())
        return nll


def sliding_windows(n: int, window: int, stride: int) -> Iterator[tuple[int, int, int]]:
    """``(begin, end, first_scored)`` of each window over ``n`` tokens.

    Targets ``[first_scored, end)`` are scored in that window (never ``begin`` itself,
    which has no context in it); for ``stride < window`` they cover ``[1, n)`` once.
    """
    prev_end = 1  # token 0 has no context and is never scored
    for begin in range(0, n, stride):
        end = min(begin + window, n)
        if end > prev_end:
            yield begin, end, max(prev_end, begin + 1)
            prev_end = end
        if end == n:
            break


def _nll_rows(logits: np.ndarray, targets: list[int]) -> np.ndarray:
    """``-log softmax(logits[r])[targets[r]]`` per row; float32 exp, float64 sums."""
    m = logits.max(axis=-1)
    lse = m + np.log(np.exp(logits - m[:, None]).sum(axis=-1, dtype=np.float64))
    return lse - logits[np.arange(len(targets)), targets]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _chunks(ids: Sequence[int]) -> range:
    return range(0, len(ids), N_BATCH)
