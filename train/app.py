"""The Hydra application behind ``ternlab train`` and ``python -m ternlab.train``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from omegaconf import DictConfig

if TYPE_CHECKING:
    from ternlab.train.config import TrainConfig

#: Where Hydra finds the shipped configs (the ``conf/`` folder, package ``ternlab.conf``).
CONFIG_PATH = "pkg://ternlab.conf"
CONFIG_NAME = "config"


def _job_output_dir(tc: TrainConfig) -> None:
    """In a multirun, each job writes to its own folder: Hydra's ``<sweep dir>/<job number>``.

    Only an explicit ``trainer.output_dir=...`` override of the job keeps its value.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return
    if any(o.split("=", 1)[0].lstrip("+~") == "trainer.output_dir" for o in hc.overrides.task):
        return
    tc.trainer.output_dir = hc.runtime.output_dir


def _task(cfg: DictConfig) -> None:
    import signal

    from ternlab.train.config import to_dataclass
    from ternlab.train.loop import train

    tc = to_dataclass(cfg)
    _job_output_dir(tc)
    result = train(tc)
    if result.stopped_by is not None:
        if result.is_main:
            print(
                f"stopped by {result.stopped_by} at step {result.steps}; checkpoint "
                f"{result.checkpoint}; continue with trainer.resume=true"
            )
        # 128 + signal number, the shell's convention for "ended by this signal".
        code = getattr(signal, result.stopped_by, signal.SIGTERM)
        raise SystemExit(128 + int(code))
    if result.is_main and result.checkpoint is not None:
        print(
            f"final checkpoint: {result.checkpoint}  (val loss {result.val_loss:.4f}, "
            f"{result.val_bpb:.4f} bits/byte)"
        )


def compose(overrides: Sequence[str] = ()) -> TrainConfig:
    """The validated config ``ternlab train *overrides`` would run (for notebooks and tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from ternlab.train.config import register_configs, to_dataclass

    register_configs()
    with initialize_config_module("ternlab.conf", version_base="1.3"):
        return to_dataclass(hydra_compose(CONFIG_NAME, overrides=list(overrides)))


def main(argv: Sequence[str] | None = None) -> int:
    """Compose the config from ``conf/`` plus ``argv`` overrides (Hydra syntax) and train.

    Hydra owns the command line: ``--help``, ``--cfg job``, ``-m`` multirun and
    ``key=value`` overrides all work. Errors exit with status 1 and a message.
    """
    import hydra

    from ternlab.train.config import register_configs

    register_configs()
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    hydra.main(config_path=CONFIG_PATH, config_name=CONFIG_NAME, version_base="1.3")(_task)()
    return 0
