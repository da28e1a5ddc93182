"""Several generation requests at once: KV-cache slots, batched decoding, a bounded queue.

The :class:`Scheduler` owns an :class:`~ternlab.inference.engine.Engine` with ``slots``
KV-cache slots and one thread that drives it. Each step it runs, in one forward pass
(:meth:`Engine.eval_batch`), the next token of every decoding sequence and a chunk of
prompt tokens of sequences still reading their prompt; then it samples each sequence's
next token (:class:`~ternlab.inference.decoding.Decoder`) and posts it to that request's
event queue. With nothing decoding a step reads up to ``prefill_chunk`` prompt tokens;
while other sequences decode, their step holds ``step_tokens`` tokens in all (at least
half of them prompt), so a new prompt rides along in small chunks instead of stalling
every decoding sequence for one long step ("stall-free" batching): decode steps stay
short (the p99 gap between tokens), and on CPUs whose batched GEMM costs about the same
up to 16 tokens (AMX tiles) the prompt is nearly free; the new request waits longer for
its first token. A sequence's logits in the batch are those it would have alone, so its
text equals :meth:`Engine.generate`'s for the same arguments.

Requests wait in a bounded queue (:class:`QueueFull` beyond it) for a free slot. A slot
keeps its tokens after its request ends; a new prompt goes to the free slot sharing the
most of its prefix (the least recently used one when none shares much), or copies a
longer prefix from any slot, so follow-up turns and the ``n`` choices of one prompt
evaluate the shared part once; echo requests with log-probs (lm-eval's scoring) reuse
the entries their slot computed for the shared context. Events go to unbounded per-request
queues, so a slow reader never holds up the step; a cancelled request (its client went
away) leaves at the next step.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from dataclasses import dataclass, field

from ternlab.inference.decoding import Decoder, TokenLogprob, prompt_logprobs
from ternlab.inference.engine import Engine
from ternlab.inference.sampling import Sampler, SamplingParams

#: Prompt tokens evaluated per step when no other sequence is decoding.
PREFILL_CHUNK = 256
#: Tokens per step in all while other sequences decode (decoding ones first, then at
#: least half of it prompt). 16: the width of an AMX tile; the 2b shape's step of 7
#: decodes + 9 prompt tokens costs 9-12 ms more than 7 decodes alone, where one step
#: of 64 prompt tokens costs 300-330 ms more (1.2-1.4 against 4.7-5.1 ms a prompt token).
STEP_TOKENS = 16
#: A prefix is copied from another slot only when it saves at least this many tokens.
MIN_COPY = 16
#: A free slot sharing fewer prompt tokens than this is no better than the least
#: recently used one (which is taken instead, keeping recent prefixes for reuse).
MIN_SHARE = 8


class QueueFull(RuntimeError):
    """The request queue is full; the client should retry later (HTTP 429)."""


@dataclass(eq=False)
class Job:
    """One sequence to generate: a prompt, its limits and where its events go.

    Events put on ``events``: ``(index, "prompt", [TokenLogprob])`` once the prompt is
    read (only with ``echo_logprobs``), ``(index, "token", piece, TokenLogprob | None,
    raw_piece)`` per generated token, then ``(index, "done", finish_reason, usage)`` or
    ``(index, "error", message)``.
    """

    index: int
    prompt: list[int]
    max_tokens: int
    params: SamplingParams
    stops: tuple[str, ...]
    events: queue.SimpleQueue
    logprobs: int | None = None  # alternatives per token; None: no log-probs
    echo_logprobs: bool = False  # also the log-probs of the prompt tokens
    parent: Job | None = None  # another choice of the same prompt: start after it read it
    cancelled: bool = False
    # Set by the scheduler.
    slot: int = -1
    todo: list[int] = field(default_factory=list)
    cached: int = 0
    decoder: Decoder | None = None
    prompt_lps: list[TokenLogprob] = field(default_factory=list)

    @property
    def reading(self) -> bool:
        """Not admitted yet, or still evaluating its prompt."""
        return self.slot < 0 or bool(self.todo)


class Scheduler:
    """Runs :class:`Job` s on ``engine``'s slots from one thread; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        max_queue: int = 64,
        prefill_chunk: int = PREFILL_CHUNK,
        step_tokens: int = STEP_TOKENS,
    ) -> None:
        if max_queue < 1 or prefill_chunk < 1 or step_tokens < 2:
            raise ValueError("max_queue and prefill_chunk must be >= 1, step_tokens >= 2")
        self.engine = engine
        self.max_queue = max_queue
        self.prefill_chunk = prefill_chunk
        self.step_tokens = step_tokens
        self.free = list(range(engine.slots))
        # Per slot: (k, prompt log-prob entries of its cached tokens 1..) from echo requests.
        self.slot_logprobs: dict[int, tuple[int | None, list[TokenLogprob]]] = {}
        self.used: dict[int, int] = {}  # slot -> the step its last request ended at
        self.active: dict[int, Job] = {}
        self.pending: collections.deque[Job] = collections.deque()
        self.cv = threading.Condition()
        self.steps = 0
        # Where the scheduler thread's time goes (GET /health shows them; serve_load reads
        # them): forward passes, the Python work around them, tokens by kind.
        self.stats = {
            "step_s": 0.0,  # in Engine.eval_batch
            "python_s": 0.0,  # the rest of each step: batching, sampling, events
            "prompt_tokens": 0,  # evaluated (cached prefixes not counted)
            "decode_tokens": 0,
            "decode_only_steps": 0,  # steps without prompt tokens, and their
            "decode_only_s": 0.0,  # eval_batch time and tokens: the batched decode rate
            "decode_only_tokens": 0,
        }
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="ternlab-scheduler", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ other threads
    def submit(self, jobs: list[Job]) -> None:
        """Queue ``jobs`` (all or none); :class:`QueueFull` when there is no room."""
        with self.cv:
            if self._stop:
                raise QueueFull("the server is shutting down")
            if len(self.pending) + len(jobs) > self.max_queue:
                raise QueueFull(
                    f"the request queue is full ({len(self.pending)} of {self.max_queue} "
                    f"sequences waiting, {len(jobs)} asked for); retry later"
                )
            self.pending.extend(jobs)
            self.cv.notify()

    def cancel(self, jobs: list[Job]) -> None:
        """Drop ``jobs`` (queued or running) at the next step."""
        with self.cv:
            for j in jobs:
                j.cancelled = True
            self.cv.notify()

    def status(self) -> dict:
        with self.cv:
            return {
                "slots": self.engine.slots,
                "active": len(self.active),
                "queued": len(self.pending),
                "max_queue": self.max_queue,
                "steps": self.steps,
                "stats": dict(self.stats),
            }

    def close(self) -> None:
        """Stop the thread; queued and running jobs get an error event."""
        with self.cv:
            self._stop = True
            self.cv.notify()
        self._thread.join(timeout=60)

    # ------------------------------------------------------------ the thread
    def _run(self) -> None:
        while True:
            with self.cv:
                while not self._stop and not self.pending and not self.active:
                    self.cv.wait()
                if self._stop:
                    break
                self._drop_cancelled()
                self._admit()
            if not self.active:
                continue
            try:
                self._step()
            except Exception as e:  # the engine failed (e.g. non-finite activations)
                for job in list(self.active.values()):
                    self._finish(job, error=f"{type(e).__name__}: {e}")
        with self.cv:
            for job in [*self.pending, *self.active.values()]:
                job.events.put((job.index, "error", "the server is shutting down"))
            self.pending.clear()
            self.active.clear()

    def _drop_cancelled(self) -> None:
        if any(j.cancelled for j in self.pending):
            self.pending = collections.deque(j for j in self.pending if not j.cancelled)
        for job in [j for j in self.active.values() if j.cancelled]:
            del self.active[job.slot]
            self.free.append(job.slot)

    def _admit(self) -> None:
        waiting: list[Job] = []
        while self.pending and self.free:
            job = self.pending.popleft()
            p = job.parent
            if p is not None and not p.cancelled and p.decoder is None and p.reading:
                waiting.append(job)  # start from the parent's cache once it has one
                continue
            try:
                self._place(job)
            except Exception as e:  # never let one request stop the scheduler
                job.cancelled = True
                job.events.put((job.index, "error", f"{type(e).__name__}: {e}"))
        self.pending.extendleft(reversed(waiting))

    def _place(self, job: Job) -> None:
        """Give ``job`` the free slot holding the longest prefix of its prompt."""
        eng, prompt = self.engine, job.prompt
        slot = max(self.free, key=lambda s: _common(eng._slots[s], prompt))
        common = _common(eng._slots[slot], prompt)
        if common < MIN_SHARE:  # nothing worth keeping: evict the least recently used
            slot = min(self.free, key=lambda s: self.used.get(s, -1))
            common = _common(eng._slots[slot], prompt)
        if job.echo_logprobs:
            # Echoed log-probs need a row for every prompt position: reuse only the
            # entries this slot computed for the shared prefix (same alternatives k).
            k, entries = self.slot_logprobs.get(slot, (None, []))
            n = min(common - 1, len(entries), len(prompt) - 1) if k == job.logprobs else 0
            n = max(n, 0)
            eng.keep_prefix(slot, n)
            job.prompt_lps = entries[:n]
        else:
            n = min(common, len(prompt) - 1)
            src = max(range(eng.slots), key=lambda s: _common(eng._slots[s], prompt))
            m = min(_common(eng._slots[src], prompt), len(prompt) - 1)
            if m >= n + MIN_COPY:
                eng.keep_prefix(slot, m, source=src)
                k, entries = self.slot_logprobs.get(src, (None, []))
                self.slot_logprobs[slot] = (k, entries[: max(m - 1, 0)])
                n = m
            else:
                eng.keep_prefix(slot, n)
        # Entry i is token i + 1's: valid while tokens 0..i + 1 stay cached.
        k, entries = self.slot_logprobs.get(slot, (None, []))
        self.slot_logprobs[slot] = (k, entries[: max(n - 1, 0)])
        self.free.remove(slot)
        job.slot, job.cached, job.todo = slot, n, prompt[n:]
        self.active[slot] = job

    def _step(self) -> None:
        t0 = time.perf_counter()
        budget = self._prompt_budget()
        batch: list[tuple[Job, list[int], bool]] = []
        for slot in sorted(self.active):
            job = self.active[slot]
            if job.todo:
                if budget <= 0:
                    continue
                chunk = job.todo[:budget]
                budget -= len(chunk)
                batch.append((job, chunk, job.echo_logprobs))
            else:
                batch.append((job, job.decoder.tokens[-1:], False))
        t1 = time.perf_counter()
        logits = self.engine.eval_batch(
            [j.slot for j, _, _ in batch], [c for _, c, _ in batch], [a for _, _, a in batch]
        )
        t2 = time.perf_counter()
        self.steps += 1
        prompt = sum(len(c) for j, c, _ in batch if j.todo)  # before _read takes them off
        decode = sum(1 for j, _, _ in batch if not j.todo)
        r = 0
        for job, chunk, all_rows in batch:
            rows = logits[r : r + (len(chunk) if all_rows else 1)]
            r += len(rows)
            if job.todo:
                self._read(job, chunk, rows, all_rows)
                if job.todo:
                    continue
            self._next_token(job, rows[-1])
        with self.cv:
            st = self.stats
            st["step_s"] += t2 - t1
            st["python_s"] += time.perf_counter() - t2 + t1 - t0
            st["prompt_tokens"] += prompt
            st["decode_tokens"] += decode
            if not prompt:
                st["decode_only_steps"] += 1
                st["decode_only_s"] += t2 - t1
                st["decode_only_tokens"] += decode

    def _prompt_budget(self) -> int:
        """Prompt tokens this step may read (the module docstring)."""
        decoding = sum(1 for j in self.active.values() if not j.todo)
        if decoding == 0:
            return self.prefill_chunk
        share = max(self.step_tokens - decoding, self.step_tokens // 2)
        return min(share, self.prefill_chunk)

    def _read(self, job: Job, chunk: list[int], rows, all_rows: bool) -> None:
        """Bookkeeping after ``chunk`` of the prompt went through the model."""
        pos = len(job.prompt) - len(job.todo)  # prompt index of chunk[0]
        job.todo = job.todo[len(chunk) :]
        if all_rows:
            targets = job.prompt[pos + 1 : pos + 1 + len(chunk)]
            job.prompt_lps += prompt_logprobs(rows[: len(targets)], targets, job.logprobs or 0)
        if not job.todo:
            job.decoder = Decoder(
                self.engine.tokenizer,
                job.prompt,
                job.max_tokens,
                Sampler(job.params),
                job.stops,
                job.logprobs,
            )
            if job.echo_logprobs:
                self.slot_logprobs[job.slot] = (job.logprobs, list(job.prompt_lps))
                first = TokenLogprob(job.prompt[0], None)
                job.events.put((job.index, "prompt", [first, *job.prompt_lps]))

    def _next_token(self, job: Job, row) -> None:
        dec = job.decoder
        if not dec.done:
            n = len(dec.tokens)
            piece = dec.push(row, len(self.engine._slots[job.slot]), self.engine.n_ctx)
            if len(dec.tokens) > n:
                lp = dec.token_logprobs[-1] if dec.logprobs is not None else None
                job.events.put((job.index, "token", piece, lp, dec.pieces[-1]))
            elif piece:  # the held-back tail, released at the end
                job.events.put((job.index, "token", piece, None, ""))
        if dec.done:
            self._finish(job)

    def _finish(self, job: Job, error: str | None = None) -> None:
        if error is not None:
            job.cancelled = True  # other choices waiting for it start on their own
            job.events.put((job.index, "error", error))
        else:
            usage = {
                "prompt_tokens": len(job.prompt),
                "cached_tokens": job.cached,
                "completion_tokens": len(job.decoder.tokens),
            }
            job.events.put((job.index, "done", job.decoder.finish, usage))
        with self.cv:
            self.active.pop(job.slot, None)
            self.free.append(job.slot)
            self.used[job.slot] = self.steps


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
