"""``to_scl_dilation_mask``: a cloud mask from the Sentinel-2 scene classification (SCL).

A VITO / Copernicus Data Space extension of openEO, not an official process. This follows its
published description (the ``to_scl_dilation_mask`` and ``mask_scl_dilation`` specifications of
openeo-python-driver, whose ``mask_scl_dilation`` process graph spells the algorithm out with
its thresholds, and the parameter defaults Copernicus Data Space applies), step by step:

1. ``first``: the pixels whose SCL class is *not* in ``mask1_values`` (by default everything
   but dark area, vegetation, bare soil, water and unclassified: nodata, saturated, cloud
   shadow, clouds, cirrus and snow), eroded by a disc of ``erosion_kernel_size`` pixels (none
   by default: a lone flagged pixel survives), then dilated: convolved with a normalised
   Gaussian of ``kernel1_size`` pixels (sigma = size / 6) and kept where above 0.057;
2. ``second``: the pixels whose class *is* in ``mask2_values`` (cloud shadow, medium and high
   probability cloud, cirrus, snow), eroded alike, convolved with a Gaussian of
   ``kernel2_size`` pixels and kept where above 0.025;
3. the mask is ``first or second``: 1 where a pixel is masked, 0 where it is clear.

A kernel size of 0 (or less) skips that dilation (its flags are used as they are; so is an
erosion size of 0). The erosion disc holds the pixels within ``size // 2`` pixels of its centre
(a plus sign for 3). Convolutions pad with zeros: beyond the cube nothing is flagged, so a
cloud just outside the loaded area does not reach in (Copernicus Data Space reads a margin
around each tile; a cube holds no such margin). Each date is masked on its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from openeo_upscale.backend.engine._common import require_cube
from openeo_upscale.backend.engine.context import Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.cubes_spatial import convolve2d, with_meta
from openeo_upscale.backend.engine.registry import PROCESSES

__all__ = ["DEFAULTS", "erosion_kernel", "gaussian_kernel", "scl_dilation_mask"]

DEFAULTS: dict[str, Any] = {
    "erosion_kernel_size": 0,
    "mask1_values": [2, 4, 5, 6, 7],
    "mask2_values": [3, 8, 9, 10, 11],
    "kernel1_size": 17,
    "kernel2_size": 201,
}
"""The parameter defaults of Copernicus Data Space's ``to_scl_dilation_mask``."""

FIRST_THRESHOLD = 0.057
"""The dilated ``first`` flags above this mask a pixel."""
SECOND_THRESHOLD = 0.025
"""The dilated ``second`` flags above this mask a pixel."""


def gaussian_kernel(size: int) -> np.ndarray:
    """A ``size`` x ``size`` Gaussian with sigma ``size / 6`` around the centre pixel, summing to 1."""
    offsets = np.arange(size, dtype=np.float64) - size // 2
    squared = offsets[:, None] ** 2 + offsets[None, :] ** 2
    kernel = np.exp(-squared / (2.0 * (size / 6.0) ** 2))
    return np.asarray(kernel / kernel.sum())


def erosion_kernel(size: int) -> np.ndarray:
    """A ``size`` x ``size`` disc: 1 within ``size // 2`` pixels of the centre, else 0."""
    offsets = np.arange(size) - size // 2
    radius = size // 2
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.float64)


def _erode(flags: np.ndarray, size: int) -> np.ndarray:
    """`flags` kept only where every pixel of the erosion disc around them (inside the array) is
    flagged: an unflagged pixel within reach clears it."""
    if size <= 0:
        return flags
    unflagged = convolve2d((~flags).astype(np.float64), erosion_kernel(size), border=0, method="direct")
    return np.asarray(unflagged <= 0.5)


def _dilate(flags: np.ndarray, size: int, threshold: float) -> np.ndarray:
    """`flags` convolved with the Gaussian of `size` pixels, above `threshold`."""
    return np.asarray(convolve2d(flags.astype(np.float64), gaussian_kernel(size), border=0) > threshold)


def scl_dilation_mask(
    scl: np.ndarray,
    erosion_kernel_size: int = 0,
    mask1_values: Any = (2, 4, 5, 6, 7),
    mask2_values: Any = (3, 8, 9, 10, 11),
    kernel1_size: int = 17,
    kernel2_size: int = 201,
) -> np.ndarray:
    """The mask (True = masked) of SCL classes `scl` over its last two axes (y, x); NaN is nodata,
    which is in no class list (so it is flagged by the first step)."""
    classes = np.asarray(scl, dtype=np.float64)
    first = ~np.isin(classes, np.asarray(mask1_values, dtype=np.float64))
    if kernel1_size > 0 and first.any():
        first = _dilate(_erode(first, erosion_kernel_size), kernel1_size, FIRST_THRESHOLD)
    second = np.isin(classes, np.asarray(mask2_values, dtype=np.float64))
    if kernel2_size > 0 and second.any():
        second = _dilate(_erode(second, erosion_kernel_size), kernel2_size, SECOND_THRESHOLD)
    return np.asarray(first | second)


def _size(args: Args, name: str) -> int:
    value = args.get(name, DEFAULTS[name])
    if value is None:
        value = DEFAULTS[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
        raise ProcessArgumentError(f"argument '{name}' must be a whole number of pixels", parameter=name)
    size = int(value)
    if size > 0 and size % 2 == 0:
        raise ProcessArgumentError(f"argument '{name}' must be odd (a kernel has a centre pixel)",
                                   parameter=name)
    return size


def _classes(args: Args, name: str) -> list[float]:
    value = args.get(name)
    if value is None:
        return [float(v) for v in DEFAULTS[name]]
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise ProcessArgumentError(f"argument '{name}' must be a list of SCL classes", parameter=name)
    return [float(v) for v in value]


def _scl_band(cube: xr.DataArray, name: Any) -> str | None:
    """The label of the SCL band: ``name``, else the only band, else the band called SCL."""
    if "bands" not in cube.dims:
        return None
    labels = [str(b) for b in cube["bands"].values]
    if name is not None:
        if str(name) not in labels:
            raise ProcessArgumentError(f"the data cube has no band '{name}' (it has {labels})",
                                       parameter="scl_band_name")
        return str(name)
    if len(labels) == 1:
        return labels[0]
    if "SCL" in labels:
        return "SCL"
    raise ProcessArgumentError(
        f"the data cube must hold only the SCL band, or name it in 'scl_band_name' (it has {labels})",
        parameter="data")


@PROCESSES.register("to_scl_dilation_mask")
def to_scl_dilation_mask(args: Args, ctx: EvalContext) -> xr.DataArray:
    """The SCL dilation mask of the module docstring: 1 masked, 0 clear, one band named as the
    SCL band (no band dimension if the input has none), every other dimension kept."""
    cube = require_cube(args["data"])
    if "x" not in cube.dims or "y" not in cube.dims:
        raise ProcessArgumentError("the data cube has no spatial dimensions x and y", parameter="data")
    band = _scl_band(cube, args.get("scl_band_name"))
    scl = cube.sel(bands=[band]) if band is not None else cube
    lead = [str(d) for d in scl.dims if d not in ("y", "x")]
    ordered = scl.transpose(*lead, "y", "x")
    flags = scl_dilation_mask(
        ordered.values,
        erosion_kernel_size=_size(args, "erosion_kernel_size"),
        mask1_values=_classes(args, "mask1_values"),
        mask2_values=_classes(args, "mask2_values"),
        kernel1_size=_size(args, "kernel1_size"),
        kernel2_size=_size(args, "kernel2_size"),
    )
    out: xr.DataArray = with_meta(ordered.copy(data=flags.astype(np.uint8)).transpose(*scl.dims), cube)
    out.attrs.pop("nodata", None)  # every pixel is 0 or 1: the mask has no nodata
    return out
