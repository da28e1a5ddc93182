"""Export accepts a checkpoint folder, a run folder or the run's ``latest`` pointer."""

from pathlib import Path

from ternlab.export.source import resolve_checkpoint
from ternlab.train.checkpoint import CHECKPOINTS, LATEST, TRAINER_STATE


def _run_folder(tmp_path: Path) -> tuple[Path, Path]:
    run = tmp_path / "run"
    ckpt = run / CHECKPOINTS / "step-00000005"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    (ckpt / TRAINER_STATE).write_text("{}")
    (run / CHECKPOINTS / LATEST).write_text("step-00000005")
    return run, ckpt


def test_checkpoint_folder_is_itself(tmp_path):
    _, ckpt = _run_folder(tmp_path)
    assert resolve_checkpoint(ckpt) == ckpt


def test_latest_pointer_and_run_folder_resolve_to_the_latest_checkpoint(tmp_path):
    run, ckpt = _run_folder(tmp_path)
    assert resolve_checkpoint(run / CHECKPOINTS / LATEST) == ckpt
    assert resolve_checkpoint(run) == ckpt


def test_unrelated_folder_is_returned_unchanged_for_the_loader_to_refuse(tmp_path):
    assert resolve_checkpoint(tmp_path) == tmp_path
