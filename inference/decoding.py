"""One sequence's generation step by step: sample, detokenize, stop, and token log-probs.

:class:`Decoder` is what :meth:`Engine.generate` and the server's scheduler both run
after each forward pass, so a sequence decoded alone and one decoded in a batch with
others stop at the same token with the same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ternlab.inference.sampling import Sampler
from ternlab.inference.tokenizer import TextTokenizer

#: The most alternatives a token's log-prob entry may list (OpenAI's ``logprobs`` cap is 5,
#: vLLM's 20).
MAX_TOP_LOGPROBS = 20


class StopBuffer:
    """Holds back generated text that may be the start of a stop string.

    :meth:`push` returns the text that is safe to show and whether a stop string was
    found; the stop string itself and anything after it are never returned.
    """

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.pending = ""

    def push(self, text: str) -> tuple[str, bool]:
        self.pending += text
        if not self.stops:
            out, self.pending = self.pending, ""
            return out, False
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[: min(hits)], ""
            return out, True
        keep = self._held()
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out

    def _held(self) -> int:
        """Length of the longest suffix of ``pending`` that starts some stop string."""
        best = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self.pending)), best, -1):
                if self.pending.endswith(s[:n]):
                    best = n
                    break
        return best


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-softmax in float64 over the last axis (as ``ternlab.evals.lm_eval_model``)."""
    z = x.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class TokenLogprob:
    """A token, its log-prob and the ``top`` most likely alternatives ``[(id, logprob)]``."""

    token: int
    logprob: float | None  # None for the first prompt token (nothing predicts it)
    top: tuple[tuple[int, float], ...] = ()


def token_logprob(logits: np.ndarray, token: int, k: int) -> TokenLogprob:
    """``token``'s log-prob under the ``logits`` row and its ``k`` best alternatives.

    Alternatives are ordered by log-prob, ties by the lower id. The values are
    :func:`log_softmax`'s, bit for bit, but only the ``k + 1`` wanted entries are
    formed: the whole float64 row was 1.9 ms of Python a token at a 128k vocabulary.
    """
    ids = np.zeros(0, dtype=np.int64)
    if k > 0:
        # log-probs order as the logits do (one shift, exact in float64), ties included.
        n = logits.shape[-1]
        if k < n:
            # The k-th largest value; of the ties at it, the lowest ids (argpartition
            # alone would pick any of them).
            kth = np.partition(logits, n - k)[n - k]
            above = np.flatnonzero(logits > kth)
            ids = np.concatenate((above, np.flatnonzero(logits == kth)[: k - len(above)]))
        else:
            ids = np.arange(n)
        ids = ids[np.lexsort((ids, -logits[ids]))]
    z = logits.astype(np.float64)
    z -= z.max()
    picked = z[np.concatenate(([token], ids))]  # x - max, before z becomes exp(z)
    np.exp(z, out=z)
    lp = picked - np.log(z.sum())
    top = tuple((int(i), float(v)) for i, v in zip(ids, lp[1:], strict=True))
    return TokenLogprob(int(token), float(lp[0]), top)


def prompt_logprobs(logits: np.ndarray, targets: list[int], k: int) -> list[TokenLogprob]:
    """Entries for ``targets[r]`` predicted by row ``r`` of ``logits``."""
    return [token_logprob(logits[r], t, k) for r, t in enumerate(targets)]


class Decoder:
    """Generation after ``prompt``: feed it each forward pass's last logits row.

    :meth:`push` samples a token, releases the text that is safe to show, and sets
    :attr:`finish` (``"stop"``: EOS/EOT or a stop string; ``"length"``: ``max_tokens``
    or a full context) once the sequence is over. ``logprobs`` (``None``: off) asks for
    a :class:`TokenLogprob` with that many alternatives per generated token.
    """

    def __init__(
        self,
        tokenizer: TextTokenizer,
        prompt: list[int],
        max_tokens: int,
        sampler: Sampler,
        stops: Iterable[str] = (),
        logprobs: int | None = None,
    ) -> None:
        self.text = tokenizer.stream(prompt)
        self.stops = StopBuffer(stops)
        self.sampler = sampler
        self.max_tokens = max_tokens
        self.logprobs = logprobs
        self.end_ids = {i for i in (tokenizer.eos_id, tokenizer.eot_id) if i is not None}
        self.tokens: list[int] = []
        self.pieces: list[str] = []  # each token's text before stop strings cut it
        self.token_logprobs: list[TokenLogprob] = []
        self.finish: str | None = None
        if max_tokens == 0:
            self.finish = "length"

    @property
    def done(self) -> bool:
        return self.finish is not None

    def push(self, logits: np.ndarray, n_past: int, n_ctx: int) -> str:
        """Sample from ``logits`` (the last row); ``n_past``: positions now cached.

        Returns the text released by this token (maybe ``""``). When :attr:`finish` is
        still ``None`` afterwards, the caller evaluates ``self.tokens[-1]`` next.
        """
        tok = self.sampler(logits)
        if tok in self.end_ids:
            self.finish = "stop"
            return self.tail()
        self.tokens.append(tok)
        if self.logprobs is not None:
            self.token_logprobs.append(token_logprob(logits, tok, self.logprobs))
        raw = self.text.push(tok)
        self.pieces.append(raw)
        piece, hit = self.stops.push(raw)
        if hit:
            self.finish = "stop"
            return piece
        if len(self.tokens) >= self.max_tokens or n_past >= n_ctx:
            self.finish = "length"
            return piece + self.tail()
        return piece

    def tail(self) -> str:
        """What is still held back, once the sequence is over."""
        piece, hit = self.stops.push(self.text.flush())
        if hit:
            self.finish = "stop"
            return piece
        return piece + self.stops.flush()
