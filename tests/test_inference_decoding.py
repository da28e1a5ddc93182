"""Log-probs of generated and prompt tokens (``ternlab.inference.decoding``): the values
the server returns are the float64 log-softmax's, bit for bit, formed without the whole row."""

import numpy as np
import pytest

from ternlab.inference.decoding import log_softmax, prompt_logprobs, token_logprob


def _reference(x: np.ndarray, token: int, k: int):
    lp = log_softmax(x)
    order = sorted(range(len(x)), key=lambda i: (-lp[i], i))[:k]
    return float(lp[token]), [(i, float(lp[i])) for i in order]


@pytest.mark.parametrize("n", [2, 17, 1000, 128256])
@pytest.mark.parametrize("ties", [False, True])
def test_token_logprob_is_log_softmax_bit_for_bit(n, ties):
    rng = np.random.default_rng(n + ties)
    for _ in range(3):
        x = (rng.standard_normal(n) * rng.uniform(0.5, 20)).astype(np.float32)
        if ties:  # many equal logits: the alternatives' order falls back on the id
            x = np.round(x / 4).astype(np.float32)
        token = int(rng.integers(0, n))
        for k in sorted({0, 1, min(5, n), n if n <= 17 else 20}):
            got = token_logprob(x, token, k)
            want_lp, want_top = _reference(x, token, k)
            assert got.token == token and got.logprob == want_lp
            assert list(got.top) == want_top


def test_prompt_logprobs_row_by_row():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((4, 50)).astype(np.float32)
    targets = [3, 0, 49, 7]
    got = prompt_logprobs(rows, targets, 2)
    assert [e.token for e in got] == targets
    for r, e in enumerate(got):
        assert e.logprob == log_softmax(rows[r])[targets[r]] and len(e.top) == 2
