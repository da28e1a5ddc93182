"""Preemption: SIGTERM / SIGINT stop the run at the next step boundary with a checkpoint.

Clusters announce preemption with SIGTERM (SLURM, Kubernetes, spot instances) and
people with Ctrl-C (SIGINT). Inside :class:`StopSignals` the first such signal only
sets a flag; the loop sees it after the current optimizer step, saves a checkpoint
(atomically, as always) and returns, so ``trainer.resume=true`` continues exactly.
A second signal gets the previous handler (for SIGINT: ``KeyboardInterrupt`` at once).
"""

from __future__ import annotations

import signal
import threading

import torch

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Context manager that turns SIGTERM/SIGINT into a stop request (main thread only)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        self.received = signum
        # Give the signal back: a second one acts as it did before (e.g. Ctrl-C twice).
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # signal() needs it
            for s in SIGNALS:
                self._previous[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, prev in self._previous.items():
            signal.signal(s, prev)
        self._previous.clear()

    def agreed(self, accelerator) -> str | None:
        """The signal's name if any process received one (collective when distributed)."""
        got = self.received
        if accelerator.num_processes > 1:
            flag = torch.tensor([1 if got else 0], device=accelerator.device)
            if int(accelerator.reduce(flag, reduction="sum")) == 0:
                return None
            if not got:
                return "a signal to another process"
        return signal.Signals(got).name if got else None
