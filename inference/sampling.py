"""Choosing the next token from a logits vector: greedy, top-k, top-p and temperature.

Order of operations (the same as llama.cpp's default sampler chain):

1. ``temperature == 0`` (or ``top_k == 1``): greedy, the arg-max (the lowest id among ties).
2. top-k: keep the ``k`` largest logits (``0`` = off). Ties at the cut are broken by the
   lower token id, so the kept set is always exactly ``k`` tokens.
3. top-p (nucleus): of what is left, keep the most likely tokens whose probability
   *at temperature 1* adds up to at least ``p`` (always at least one; ``1.0`` = off).
4. temperature: divide the surviving logits by ``temperature``, softmax, draw one token.

Because top-k and top-p come before the temperature, the set of candidate tokens does not
depend on the temperature; the temperature only reshapes the distribution over them.
Every function is pure apart from the ``numpy.random.Generator`` passed in, so a seed
reproduces a generation exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens; the defaults are greedy decoding."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        t = self.temperature
        if not (isinstance(t, (int, float)) and np.isfinite(t) and t >= 0):
            raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {t!r}")
        if not isinstance(self.top_k, (int, np.integer)) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {self.top_k!r}")
        p = self.top_p
        if not (isinstance(p, (int, float)) and 0.0 < p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {p!r}")
        s = self.seed
        if s is not None and (not isinstance(s, (int, np.integer)) or s < 0):
            raise ValueError(f"seed must be an integer >= 0 or None, got {self.seed!r}")

    @property
    def greedy(self) -> bool:
        """True when sampling reduces to the arg-max."""
        return self.temperature == 0 or self.top_k == 1


def greedy(logits: np.ndarray) -> int:
    """The arg-max token id (the lowest id among equal maxima)."""
    return int(np.argmax(_vector(logits)))


def sorted_candidates(logits: np.ndarray, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and their logits, largest logit first (ties: lower id first).

    ``k > 0`` keeps only the first ``k`` (top-k).
    """
    x = _vector(logits)
    n = x.shape[0]
    if 0 < k < n:
        # argpartition is O(n); widen to every token tied with the k-th so that the
        # stable sort below can break the tie by id, as a full sort would.
        kth = np.partition(x, n - k)[n - k]
        ids = np.flatnonzero(x >= kth)
    else:
        ids = np.arange(n)
    order = np.lexsort((ids, -x[ids]))  # primary: logit descending; secondary: id ascending
    ids = ids[order]
    if 0 < k < ids.shape[0]:
        ids = ids[:k]
    return ids, x[ids]


def top_p_cut(sorted_logits: np.ndarray, p: float) -> int:
    """How many of the (descending) ``sorted_logits`` the nucleus ``p`` keeps (>= 1).

    Probabilities are the softmax at temperature 1 over the given candidates.
    """
    if p >= 1.0:
        return int(sorted_logits.shape[0])
    probs = softmax(sorted_logits)
    cum = np.cumsum(probs)
    # The first index where the running total reaches p is the last one kept.
    return int(min(np.searchsorted(cum, p, side="left") + 1, sorted_logits.shape[0]))


def softmax(x: np.ndarray) -> np.ndarray:
    """A float64 softmax, stable for large logits."""
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """Pick one token id from ``logits`` (``[n_vocab]``) as described in the module docstring."""
    if params.greedy:
        return greedy(logits)
    ids, cand = sorted_candidates(logits, params.top_k)
    keep = top_p_cut(cand, params.top_p)
    ids, cand = ids[:keep], cand[:keep]
    probs = softmax(cand / params.temperature)
    # Inverse-CDF draw from one uniform number: reproducible for a seed and cheap.
    i = int(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum(), side="right"))
    return int(ids[min(i, ids.shape[0] - 1)])


class Sampler:
    """:func:`sample` with its own seeded generator (``seed=None``: fresh entropy)."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def __call__(self, logits: np.ndarray) -> int:
        return sample(logits, self.params, self.rng)


def _vector(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits)
    if x.ndim != 1 or x.shape[0] == 0:
        raise ValueError(f"logits must be a non-empty 1-D vector, got shape {x.shape}")
    return x
