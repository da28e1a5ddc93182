"""A few-step tiny training run whose checkpoint the export tests start from."""

from __future__ import annotations

from pathlib import Path


def quick_checkpoint(root: Path, *extra: str) -> Path:
    """Train the ``tiny`` preset for 4 steps under ``root``; ``extra`` are Hydra overrides."""
    from ternlab.train import compose, train

    overrides = [
        "model=tiny",
        "tracking=disabled",
        "data.seq_len=32",
        "data.arith.num_examples=300",
        "trainer.batch_size=4",
        "trainer.max_steps=4",
        "trainer.progress=false",
        "trainer.plot=false",
        "trainer.eval_every=1000",
        "trainer.eval_batches=1",
        "optim.warmup_steps=1",
        f"data.cache_dir={root / 'cache'}",
        f"trainer.output_dir={root / 'run'}",
        *extra,
    ]
    return train(compose(overrides)).checkpoint
