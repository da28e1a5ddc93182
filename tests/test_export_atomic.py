"""Atomic writes leave the usual permissions and nothing behind on failure."""

import os
import stat

import pytest

from ternlab.export.atomic import atomic_dir, atomic_file


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_file_gets_default_permissions(tmp_path, umask_022):
    with atomic_file(tmp_path / "m.gguf") as tmp:
        tmp.write_bytes(b"GGUF")
    assert stat.S_IMODE((tmp_path / "m.gguf").stat().st_mode) == 0o644


def test_dir_gets_default_permissions(tmp_path, umask_022):
    with atomic_dir(tmp_path / "ckpt") as tmp:
        (tmp / "config.json").write_text("{}")
    assert stat.S_IMODE((tmp_path / "ckpt").stat().st_mode) == 0o755


def test_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "m.gguf") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
