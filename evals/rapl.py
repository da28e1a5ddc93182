"""Measured CPU energy from Linux powercap RAPL counters, where this machine allows it.

``/sys/class/powercap/intel-rapl:N/energy_uj`` (AMD Zen exposes the same interface)
counts the energy of CPU package ``N`` in microjoules and wraps at
``max_energy_range_uj``. Reading it needs root on kernels since 5.10 and is
impossible in most containers and VMs; :func:`available` says which, and callers
fall back to the labelled estimate of :mod:`ternlab.evals.energy`. A measurement
covers the whole package, other processes included, so it is an upper bound for
the model's own energy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class Zone:
    """One top-level RAPL package zone."""

    name: str
    energy_file: Path
    max_range_uj: int


def zones(root: Path = POWERCAP) -> list[Zone]:
    """The readable package zones (``intel-rapl:N``, not their sub-zones)."""
    out = []
    for d in sorted(root.glob("intel-rapl:*")):
        if d.name.count(":") != 1:  # intel-rapl:0:0 is a sub-zone of package 0
            continue
        f = d / "energy_uj"
        try:
            int(f.read_text())
            rng = int((d / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            continue
        name = (d / "name").read_text().strip() if (d / "name").is_file() else d.name
        out.append(Zone(name, f, rng))
    return out


def available(root: Path = POWERCAP) -> bool:
    """Whether at least one package energy counter can be read."""
    return bool(zones(root))


def delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Counter difference, allowing for one wrap-around at ``max_range_uj``."""
    return after - before if after >= before else after + max_range_uj - before


class RaplMeter:
    """``with RaplMeter() as m: ...`` then ``m.joules`` (all packages) and ``m.seconds``."""

    def __init__(self, root: Path = POWERCAP) -> None:
        self.zones = zones(root)
        if not self.zones:
            raise PermissionError(
                f"no readable RAPL counter under {root}/intel-rapl:*/energy_uj (needs root, "
                "and a machine that exposes powercap); the report uses the estimate instead"
            )
        self.joules = 0.0
        self.seconds = 0.0

    def _read(self) -> list[int]:
        return [int(z.energy_file.read_text()) for z in self.zones]

    def __enter__(self) -> RaplMeter:
        self._t0 = time.perf_counter()
        self._e0 = self._read()
        return self

    def __exit__(self, *exc) -> None:
        e1 = self._read()
        self.seconds = time.perf_counter() - self._t0
        uj = sum(
            delta_uj(a, b, z.max_range_uj) for a, b, z in zip(self._e0, e1, self.zones, strict=True)
        )
        self.joules = uj * 1e-6
