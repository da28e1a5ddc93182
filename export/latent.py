"""Latent full-precision weights that quantize back to given ternary codes *and* scale.

``W = codes * scale`` does not work: the spec's scale is ``1 / (1 / mean(|W|))``
and the mean of that ``W`` is ``scale * (fraction of non-zeros)``. Nudging one
common magnitude by ulps does not work either: float32 sums of many equal
values move in jumps of several ulps of the mean.

So we choose the float32 *sum* first: a value ``S`` near ``scale * n`` whose
mean ``S / n`` gives ``scale``. Every non-zero entry gets a magnitude that is a
multiple of ``u = ulp(S)``: all but one get ``a = floor(S / nnz / u) * u``, one
gets the rest ``S - (nnz - 1) * a``. Every partial sum is then a multiple of
``u`` no larger than ``S``, hence exact in float32 whatever order ``torch.mean``
adds in, so the mean is exactly ``fl(S / n)``. ``a >= scale`` rounds to ±1.
We try the few ``S`` nearest ``scale * n`` and check with :func:`weight_quant`.

Not every float32 is reachable: the mean of ``n`` values is ``fl(S / n)`` for a
float32 ``S``, and when ``ulp(S) / n > ulp(scale)`` some means are skipped. A
scale that came out of :func:`weight_quant` on a same-shaped tensor (ternlab
checkpoints, I2_S, hf-packed) is always reachable. The fp16 scale of a TQ1_0 /
TQ2_0 block may not be: with ``nearest=True`` we then return the closest
reachable scale (one or two float32 ulps away) instead of raising.
"""

from __future__ import annotations

import numpy as np
import torch

from ternlab.bitlinear.quant import weight_quant
from ternlab.bitlinear.spec import EPS
from ternlab.export.errors import ExportError

N_CANDIDATES = 16


def latent_from_ternary(
    codes: torch.Tensor, scale: float, name: str = "weight", nearest: bool = False
) -> tuple[torch.Tensor, float]:
    """float32 ``W`` with ``weight_quant(W) == (codes, scale)``, and the scale it quantizes to.

    Raises :class:`ExportError` if no ``W`` gives exactly ``scale`` (unless ``nearest``).
    """
    codes = codes.to(torch.int8)
    nnz = int(codes.count_nonzero())
    if nnz == 0:  # every scale describes the same all-zero weight
        w = torch.zeros(codes.shape, dtype=torch.float32)
        return w, float(weight_quant(w).scale)
    target = torch.tensor(scale, dtype=torch.float32)
    if float(target) < EPS:
        raise ExportError(
            f"tensor {name}: scale {float(target)} is below the spec's eps {EPS}; no latent "
            "weight quantizes to it"
        )
    best: tuple[float, torch.Tensor, float] | None = None
    for total in _sum_candidates(float(target), codes.numel()):
        w = _with_sum(codes, nnz, total)
        if w is None:
            continue
        q = weight_quant(w)
        if not torch.equal(q.codes, codes):
            continue
        if q.scale == target:
            return w, float(target)
        err = abs(float(q.scale) - float(target))
        if best is None or err < best[0]:
            best = (err, w, float(q.scale))
    if nearest and best is not None:
        return best[1], best[2]
    raise ExportError(
        f"tensor {name}: found no latent weight that quantizes to scale {float(target)!r} "
        f"with these codes ({nnz} non-zeros of {codes.numel()}); the imported model would differ"
    )


def _sum_candidates(scale: float, n: int) -> list[np.float32]:
    """float32 sums nearest ``scale * n``, closest first."""
    s = np.float32(scale * n)
    out, up, down = [s], s, s
    for _ in range(N_CANDIDATES):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(0))
        out += [up, down]
    return out


def _with_sum(codes: torch.Tensor, nnz: int, total: np.float32) -> torch.Tensor | None:
    """Signs of ``codes`` times multiples of ``ulp(total)`` that add up to ``total`` exactly."""
    u = float(np.spacing(total))
    a = np.floor(float(total) / nnz / u) * u  # exact: a multiple of u below total
    rest = float(total) - (nnz - 1) * a  # exact in float64, a multiple of u <= total
    if a <= 0 or rest < a:
        return None
    mag = torch.full(codes.shape, a, dtype=torch.float32)
    mag.view(-1)[codes.view(-1).nonzero()[0]] = rest
    return codes.to(torch.float32) * mag
