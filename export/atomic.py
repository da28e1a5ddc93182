"""Write files and folders atomically: build under a temporary name, ``os.replace`` at the end.

A failed export or import leaves nothing at the target path (and no temporary
file either): the temporary sits in the target's own directory so the final
rename never crosses a file system.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _default_mode(path: Path, base: int) -> None:
    """Give a temporary the permissions a plain ``open``/``mkdir`` would have had.

    ``mkstemp``/``mkdtemp`` create private (0600/0700) entries; an exported model is
    meant to be shared like any other file.
    """
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(base & ~umask)


@contextmanager
def atomic_file(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; move it into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".tmp-{final.name}-", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _default_mode(tmp, 0o666)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``final``; it replaces ``final`` only on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        _default_mode(tmp, 0o777)
        if final.exists():  # replace an old export: move it aside first (os.replace needs empty)
            old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent))
            os.replace(final, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
