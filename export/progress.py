"""A rich progress bar over tensors (silent when disabled)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def track(items: Iterable[T], total: int, description: str, enabled: bool) -> Iterator[T]:
    """Iterate ``items``, drawing a bar on stderr when ``enabled``."""
    if not enabled:
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, total=total, description=description, transient=True)
