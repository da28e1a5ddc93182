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


def _task(cfg: DictConfig) -> None:
    from ternlab.train.config import to_dataclass
    from ternlab.train.loop import train

    result = train(to_dataclass(cfg))
    if result.is_main and result.checkpoint is not None:
        print(f"final checkpoint: {result.checkpoint}  (val loss {result.val_loss:.4f})")


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
