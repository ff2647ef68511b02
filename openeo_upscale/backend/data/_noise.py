"""Hashing and value noise for the synthetic collections: pure functions of integer keys and places.

Everything here is built from integer hashing (splitmix64) and exactly rounded float operations
(``+ - * /``, ``floor``, comparisons), never ``sin``/``exp``/``pow``, whose SIMD and scalar paths
may round differently: a value depends on the point it is computed for, not on the array around
it, so two tiles that share a point agree on it bit for bit.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = ["Octaves", "fbm", "hash_", "noise", "noise_gradient", "threshold", "u", "uniform"]

Floats = npt.NDArray[np.float64]
Octaves = tuple[tuple[float, float], ...]
"""Value-noise octaves: (lattice cell in metres, weight)."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K_QUANTILES = 0x5151  # the sample points of `threshold`; no provider uses this key


def _mix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser. Arrays only: numpy warns on overflow of uint64 scalars, not arrays."""
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


def hash_(*parts: int | npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of integer parts, broadcast together; put scalars first, then 1-D axes, so
    that only the last combination runs over the full grid."""
    h = np.zeros(1, dtype=np.uint64)
    for part in parts:
        word = np.atleast_1d(np.asarray(part, dtype=np.int64)).view(np.uint64)
        h = _mix(h ^ _mix(word + _GOLDEN))
    return h


def uniform(h: npt.NDArray[np.uint64]) -> Floats:
    """Hash -> float64 uniform in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)


def u(*parts: int) -> float:
    """A uniform in [0, 1) for scalar parts (per-scene values)."""
    return float(uniform(hash_(*parts))[0])


def _cell(key: tuple[int, ...], gx: Floats, gy: Floats, cell: float
          ) -> tuple[Floats, Floats, Floats, Floats, Floats, Floats]:
    """The four hashed lattice values around each point and the point's place in its cell:
    (a, b, c, d, fx, fy), a/b on the lower lattice row, c/d on the upper. In-place arithmetic:
    these run over every pixel, several times per field."""
    fx, fy = gx / cell, gy / cell
    ix, iy = np.floor(fx), np.floor(fy)
    fx -= ix
    fy -= iy
    jx, jy = ix.astype(np.int64), iy.astype(np.int64)
    x0, y0 = int(jx.min()), int(jy.min())
    width = int(jx.max()) - x0 + 2
    lattice = uniform(hash_(*key, np.arange(y0, int(jy.max()) + 2)[:, None],
                            np.arange(x0, x0 + width)[None, :])).ravel()
    jy -= y0
    jy *= width
    jx -= x0
    jy += jx
    a = lattice[jy]
    jy += 1
    b = lattice[jy]
    jy += width
    d = lattice[jy]
    jy -= 1
    c = lattice[jy]
    return a, b, c, d, fx, fy


def _smoothstep(f: Floats) -> Floats:
    """``f * f * (3 - 2 f)``, into a new array."""
    w = f * -2.0
    w += 3.0
    w *= f
    w *= f
    return w


def noise(key: tuple[int, ...], gx: Floats, gy: Floats, cell: float) -> Floats:
    """Value noise in [0, 1] at the points (`gx`, `gy`) (metres, any shape): hashed values on a
    lattice of `cell` metres, interpolated with smoothstep weights."""
    if gx.size == 0:
        return np.zeros(gx.shape)
    a, b, c, d, fx, fy = _cell(key, gx, gy, cell)
    wx, wy = _smoothstep(fx), _smoothstep(fy)
    b -= a
    b *= wx
    a += b  # the lower row, interpolated
    d -= c
    d *= wx
    c += d  # the upper row
    c -= a
    c *= wy
    a += c
    return a


def noise_gradient(key: tuple[int, ...], gx: Floats, gy: Floats, cell: float
                   ) -> tuple[Floats, Floats, Floats]:
    """`noise` and its gradient (per metre) at the points: (value, d/dx, d/dy)."""
    if gx.size == 0:
        return np.zeros(gx.shape), np.zeros(gx.shape), np.zeros(gx.shape)
    a, b, c, d, fx, fy = _cell(key, gx, gy, cell)
    wx, wy = _smoothstep(fx), _smoothstep(fy)
    dwx, dwy = 6.0 * fx * (1.0 - fx) / cell, 6.0 * fy * (1.0 - fy) / cell
    low, high = a + (b - a) * wx, c + (d - c) * wx
    value = low + (high - low) * wy
    ddx = ((b - a) + ((d - c) - (b - a)) * wy) * dwx
    return value, ddx, (high - low) * dwy


def fbm(key: tuple[int, ...], gx: Floats, gy: Floats, octaves: Octaves) -> Floats:
    """A weighted sum of value-noise octaves at the points, normalised to [0, 1]."""
    total = sum(w for _, w in octaves)
    out = np.zeros(gx.shape)
    for n, (cell, weight) in enumerate(octaves):
        field = noise((*key, n), gx, gy, cell)
        field *= weight / total
        out += field
    return out


@cache
def _sorted_sample(octaves: Octaves) -> Floats:
    """2**16 values of an fBm field at scattered points, sorted: its empirical distribution.

    Every key gives the same distribution, and at one point the four lattice values of each
    octave are i.i.d. uniforms, so each sample draws them afresh instead of building lattices
    (which the finest octave would make large); the points spread over 1000 km so the
    fractional positions in the octaves have their joint distribution."""
    index = np.arange(1 << 16)
    xs = uniform(hash_(_K_QUANTILES, 0, index)) * 1e6
    ys = uniform(hash_(_K_QUANTILES, 1, index)) * 1e6
    total = sum(w for _, w in octaves)
    out = np.zeros(index.size)
    for n, (cell, weight) in enumerate(octaves):
        fx, fy = xs / cell - np.floor(xs / cell), ys / cell - np.floor(ys / cell)
        wx, wy = fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy)
        a, b, c, d = (uniform(hash_(_K_QUANTILES, 2 + n, corner, index)) for corner in range(4))
        low, high = a + (b - a) * wx, c + (d - c) * wx
        out += (weight / total) * (low + (high - low) * wy)
    return np.sort(out)


def threshold(octaves: Octaves, exceed: float) -> float:
    """The level of an `fbm` field with these octaves that a share `exceed` of the field lies
    above (+inf for 0, -inf for 1)."""
    if exceed <= 0.0:
        return math.inf
    if exceed >= 1.0:
        return -math.inf
    sample = _sorted_sample(octaves)
    return float(sample[min(sample.size - 1, int((1.0 - exceed) * sample.size))])
