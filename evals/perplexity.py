"""Token-level perplexity of held-out text, with lm-eval's rolling-window semantics.

Each document is scored as lm-eval's ``loglikelihood_rolling`` scores it: the first
token is conditioned on the model's prefix token (BOS), longer documents are cut
into lm-eval's disjoint windows of ``max_length`` tokens (``get_rolling_token_windows``
+ ``make_disjoint_window``, context 1), and every token is predicted exactly once.
``ppl = exp(total NLL / total tokens)`` over all documents. The same function runs
the C++ engine and PyTorch (:mod:`ternlab.evals.backends`), so the two can be
compared on identical token ids.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ternlab.evals.backends import Scorer


@dataclass(frozen=True)
class Perplexity:
    """``ppl = exp(nll)``; ``nll`` the mean negative log-likelihood in nats per token."""

    ppl: float
    nll: float
    n_tokens: int
    n_windows: int
    seconds: float
    backend: str

    def to_dict(self) -> dict:
        return asdict(self)


def windows(tokens: Sequence[int], prefix_token: int, max_length: int) -> Iterator[tuple]:
    """lm-eval's disjoint rolling windows: ``(input ids, target ids)`` pairs."""
    from lm_eval import utils

    for w in utils.get_rolling_token_windows(
        token_list=list(tokens), prefix_token=prefix_token, max_seq_len=max_length, context_len=1
    ):
        yield utils.make_disjoint_window(w)


def token_nlls(scorer: Scorer, tokens: Sequence[int], max_length: int | None = None) -> np.ndarray:
    """Negative log-likelihood (nats) of every token of one document, in order."""
    from ternlab.evals.lm_eval_model import log_softmax

    max_length = max_length or scorer.max_length
    out = []
    for ctx, cont in windows(tokens, scorer.prefix_token, max_length):
        inp = (ctx + cont)[:-1]
        rows = log_softmax(scorer.logits(inp)[-len(cont) :])
        out.append(-rows[np.arange(len(cont)), np.asarray(cont)])
    return np.concatenate(out) if out else np.zeros(0)


def perplexity(
    scorer: Scorer,
    docs: Sequence[str] | Sequence[Sequence[int]],
    max_length: int | None = None,
    max_tokens: int | None = None,
) -> Perplexity:
    """Perplexity of ``docs`` (texts, or token ids used as given) under ``scorer``.

    ``max_tokens`` caps the tokens scored (documents are taken in order, the last one
    cut), so a long file can be sampled in bounded time.
    """
    t0 = time.perf_counter()
    total, count, n_windows = 0.0, 0, 0
    length = max_length or scorer.max_length
    for doc in docs:
        ids = scorer.encode(doc) if isinstance(doc, str) else list(doc)
        if max_tokens is not None:
            ids = ids[: max_tokens - count]
        if not ids:
            continue
        nll = token_nlls(scorer, ids, length)
        total += float(nll.sum())
        count += len(nll)
        n_windows += math.ceil(len(ids) / length)
        if max_tokens is not None and count >= max_tokens:
            break
    if count == 0:
        raise ValueError("perplexity: the documents have no tokens")
    mean = total / count
    return Perplexity(math.exp(mean), mean, count, n_windows, time.perf_counter() - t0, scorer.name)


def read_text_docs(path: str | Path) -> list[str]:
    """A plain-text file as one document (e.g. WikiText-2's ``test.txt``)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"--ppl-text {path}: no such file; give a plain-text file "
            "(e.g. WikiText-2's test.txt, whose official source is pytorch/examples)"
        )
    return [p.read_text(encoding="utf-8")]
