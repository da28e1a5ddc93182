"""The scheduler's step budget: a prompt that arrives while other sequences decode is read
in chunks beside their tokens (``step_tokens`` in all), and its text is unchanged."""

from __future__ import annotations

import queue

import pytest
from engine_helpers import engine_model

from ternlab.inference.engine import Engine
from ternlab.inference.sampling import SamplingParams
from ternlab.inference.scheduler import Job, Scheduler


class RecordingEngine:
    """The real engine, with each step's batch written down: (prompt chunk sizes, decodes)."""

    def __init__(self, eng: Engine) -> None:
        self.eng, self.steps = eng, []
        self.decoding_slots: set[int] = set()

    def __getattr__(self, name):
        return getattr(self.eng, name)

    def eval_batch(self, slots, chunks, all_rows):
        reading = [len(c) for s, c in zip(slots, chunks, strict=True) if not self._decoding(s, c)]
        self.steps.append((reading, len(chunks) - len(reading)))
        return self.eng.eval_batch(slots, chunks, all_rows)

    def _decoding(self, slot: int, chunk: list[int]) -> bool:
        return slot in self.decoding_slots and len(chunk) == 1


def _job(prompt: list[int], max_tokens: int) -> Job:
    return Job(0, prompt, max_tokens, SamplingParams(), (), queue.SimpleQueue())


def _text(job: Job) -> str:
    pieces = []
    while True:
        ev = job.events.get(timeout=120)
        if ev[1] == "token":
            pieces.append(ev[2])
        elif ev[1] == "done":
            return "".join(pieces)
        else:
            raise AssertionError(ev)


@pytest.mark.parametrize("step_tokens", [4, 7])
def test_a_prompt_is_read_in_chunks_while_others_decode(tmp_path_factory, step_tokens):
    path = engine_model(tmp_path_factory)[0]
    ref = Engine(path, threads=1)
    rec = RecordingEngine(Engine(path, threads=1, slots=2))
    first, second = ref.encode("12+30="), ref.encode("The sum of 5 and 7 and 9 and 11 is")
    assert len(second) > 2 * step_tokens
    want = ["".join(ref.generate(p, max_tokens=n)) for p, n in ((first, 40), (second, 6))]
    sched = Scheduler(rec, step_tokens=step_tokens)
    try:
        a = _job(first, 40)
        sched.submit([a])
        ev = a.events.get(timeout=120)  # its first token: it decodes from now on
        rec.decoding_slots = {a.slot}
        b = _job(second, 6)
        sched.submit([b])
        texts = [ev[2] + _text(a), _text(b)]
    finally:
        sched.close()
    assert texts == want  # chunking changes no logit
    # While `a` decodes, `b`'s prompt comes step_tokens - 1 tokens at a time (the last
    # chunk what is left), never in one step.
    # (After its prompt, `b`'s own decoding steps look like 1-token chunks: stop there.)
    chunks: list[int] = []
    for reading, decodes in rec.steps[1:]:
        if reading and decodes == 1 and sum(chunks) < len(second):
            chunks += reading
    share = max(step_tokens - 1, step_tokens // 2)
    assert sum(chunks) == len(second)
    assert chunks[:-1] == [share] * (len(chunks) - 1) and 0 < chunks[-1] <= share
    # With nothing else decoding, the first prompt was read whole.
    assert rec.steps[0] == ([len(first)], 0)


def test_step_tokens_is_checked(tmp_path_factory):
    eng = Engine(engine_model(tmp_path_factory)[0], threads=1)
    with pytest.raises(ValueError, match="step_tokens >= 2"):
        Scheduler(eng, step_tokens=1)
