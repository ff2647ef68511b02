"""``sar_backscatter``: Sentinel-1 GRD backscatter coefficients, on the synthetic flat world.

``load_collection("SENTINEL1_GRD")`` delivers sigma0 on the ellipsoid in linear power (see
:mod:`openeo_upscale.backend.data.sentinel1`), as Copernicus Data Space applies a default
backscatter to GRD too. This process converts it, per date and column, with the scene's
incidence angle theta (the provider's ``incidence_angle(epsg, xs, day)``, 30-46 degrees across
a swath):

- ``sigma0-ellipsoid`` and ``sigma0-terrain``: sigma0 as it is (the synthetic terrain is flat,
  so terrain and ellipsoid normalisation agree);
- ``gamma0-ellipsoid`` and ``gamma0-terrain`` (the default, as on Copernicus Data Space):
  sigma0 / cos(theta);
- ``beta0``: sigma0 / sin(theta).

``noise_removal=false`` adds back the thermal noise floor (the provider's ``NESZ``, -22 dB) before
converting. ``elevation_model`` (a name or null) and ``options`` are accepted and change nothing
on flat terrain. The bands asked for are appended after the polarisations, in the order of the
specification: ``mask`` (1 valid, null where the data is nodata: flat terrain has no layover or
shadow), ``contributing_area`` (square metres: the pixel's ground area on flat terrain),
``local_incidence_angle`` and ``ellipsoid_incidence_angle`` (degrees, equal here). The
provider's nodata (0) becomes NaN, the engine's nodata. The result is float32.

The input must be a GRD cube: polarisation bands only (VV, VH, HH, HV), a temporal dimension of
acquisition days, x and y in the UTM zone the data was loaded in, not converted yet.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from openeo_upscale.backend.engine._common import require_cube
from openeo_upscale.backend.engine.context import Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.cubes_spatial import with_meta
from openeo_upscale.backend.engine.registry import PROCESSES

__all__ = ["COEFFICIENTS", "DEFAULTS", "EXTRA_BANDS", "POLARIZATION_BANDS", "divisor"]

COEFFICIENTS = ("beta0", "sigma0-ellipsoid", "sigma0-terrain", "gamma0-ellipsoid", "gamma0-terrain")
"""The backscatter coefficients ``coefficient`` may name."""
DEFAULTS: dict[str, Any] = {
    "coefficient": "gamma0-terrain",
    "elevation_model": None,
    "mask": False,
    "contributing_area": False,
    "local_incidence_angle": False,
    "ellipsoid_incidence_angle": False,
    "noise_removal": True,
    "options": {},
}
"""The parameter defaults of ``sar_backscatter`` (those of the openEO specification and Copernicus
Data Space)."""
EXTRA_BANDS = ("mask", "contributing_area", "local_incidence_angle", "ellipsoid_incidence_angle")
"""The optional bands, in the order they are appended."""
POLARIZATION_BANDS = frozenset({"VV", "VH", "HH", "HV"})
"""The bands a GRD cube may hold."""
COEFFICIENT_ATTR = "sar:coefficient"
"""Cube attribute naming the coefficient a result of this process holds."""
_LOADED = "sigma0-ellipsoid"
_PROVIDER = "openeo_upscale.backend.data.sentinel1"


def divisor(coefficient: str, theta_deg: float) -> float:
    """What sigma0 is divided by to give `coefficient` at incidence `theta_deg` (degrees)."""
    theta = math.radians(theta_deg)
    if coefficient.startswith("gamma0"):
        return math.cos(theta)
    if coefficient == "beta0":
        return math.sin(theta)
    return 1.0


def _flag(args: Args, name: str) -> bool:
    value = args.get(name, DEFAULTS[name])
    if value is None:
        return bool(DEFAULTS[name])
    if not isinstance(value, bool):
        raise ProcessArgumentError(f"argument '{name}' must be true or false, not {value!r}", parameter=name)
    return value


def _coefficient(args: Args) -> str:
    value = args.get("coefficient", DEFAULTS["coefficient"])
    if value is None:
        raise ProcessArgumentError(
            "coefficient null (non-normalised backscatter, digital numbers) is not available: the "
            f"synthetic GRD is calibrated; use one of {list(COEFFICIENTS)}", parameter="coefficient")
    if value not in COEFFICIENTS:
        raise ProcessArgumentError(f"unknown coefficient {value!r}; use one of {list(COEFFICIENTS)}",
                                   parameter="coefficient")
    return str(value)


def _check_other_arguments(args: Args) -> None:
    elevation = args.get("elevation_model")
    if elevation is not None and not isinstance(elevation, str):
        raise ProcessArgumentError("argument 'elevation_model' must be the name of a DEM or null",
                                   parameter="elevation_model")
    options = args.get("options")
    if options is not None and not isinstance(options, Mapping):
        raise ProcessArgumentError("argument 'options' must be an object", parameter="options")


def _grd(cube: xr.DataArray) -> list[str]:
    """The polarisation bands of a GRD cube; refuses anything else."""
    if set(cube.dims) != {"t", "bands", "y", "x"}:
        raise ProcessArgumentError(
            f"sar_backscatter needs a Sentinel-1 GRD cube with dimensions t, bands, y and x (not "
            f"{[str(d) for d in cube.dims]}): apply it right after load_collection('SENTINEL1_GRD')",
            parameter="data")
    bands = [str(b) for b in cube["bands"].values]
    other = [b for b in bands if b not in POLARIZATION_BANDS]
    if other or not bands:
        raise ProcessArgumentError(
            f"sar_backscatter needs Sentinel-1 GRD data (bands {sorted(POLARIZATION_BANDS)}), not bands "
            f"{other or bands}", parameter="data")
    done = cube.attrs.get(COEFFICIENT_ATTR)
    if done is not None and done != _LOADED:
        raise ProcessArgumentError(f"the data cube already holds {done} backscatter: sar_backscatter "
                                   "converts GRD once", parameter="data")
    return bands


def _provider(ctx: EvalContext) -> Any:
    """The SENTINEL1_GRD provider of the job (its ``incidence_angle`` and ``NESZ``)."""
    providers = ctx.services.get("collections")
    provider = providers.get("SENTINEL1_GRD") if isinstance(providers, Mapping) else None
    if provider is None:
        provider = importlib.import_module(_PROVIDER)
    if not hasattr(provider, "incidence_angle"):
        raise ProcessArgumentError("the SENTINEL1_GRD data of this job have no incidence angles",
                                   parameter="data")
    return provider


def _angles(provider: Any, cube: xr.DataArray) -> np.ndarray:
    """Incidence angles in degrees, shape (t, x)."""
    crs = cube.attrs.get("crs")
    try:
        epsg = int(crs)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ProcessArgumentError(f"the data cube's CRS {crs!r} is not an EPSG code",
                                   parameter="data") from None
    xs = np.asarray(cube["x"].values, dtype=np.float64)
    rows = []
    for label in cube["t"].values:
        day: date = pd.Timestamp(label).date()
        try:
            rows.append(np.asarray(provider.incidence_angle(epsg, xs, day), dtype=np.float64))
        except ValueError as exc:
            raise ProcessArgumentError(f"no Sentinel-1 acquisition geometry for {day.isoformat()} in "
                                       f"EPSG:{epsg} ({exc})", parameter="data") from exc
    return np.stack(rows) if rows else np.zeros((0, xs.size))


@PROCESSES.register("sar_backscatter")
def sar_backscatter(args: Args, ctx: EvalContext) -> xr.DataArray:
    """The backscatter coefficient of the module docstring, with the bands asked for appended."""
    cube = require_cube(args["data"])
    coefficient = _coefficient(args)
    extras = [name for name in EXTRA_BANDS if _flag(args, name)]
    noise_removal = _flag(args, "noise_removal")
    _check_other_arguments(args)
    bands = _grd(cube)
    provider = _provider(ctx)
    theta = _angles(provider, cube)

    ordered = cube.transpose("t", "bands", "y", "x")
    sigma0 = np.asarray(ordered.values, dtype=np.float64)
    nodata = ordered.attrs.get("nodata")
    invalid = np.isnan(sigma0)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        invalid |= sigma0 == float(nodata)
    if not noise_removal:
        sigma0 = sigma0 + float(provider.NESZ)
    divisors = np.array([[divisor(coefficient, float(v)) for v in row] for row in theta]).reshape(theta.shape)
    values = np.where(invalid, np.nan, sigma0 / divisors[:, None, None, :])

    layers = [values.astype(np.float32)]
    any_invalid: np.ndarray = np.asarray(invalid.any(axis=1))  # (t, y, x)
    shape = (theta.shape[0], 1, ordered.sizes["y"], ordered.sizes["x"])
    res = float(cube.attrs.get("resolution") or 0.0)
    for name in extras:
        if name == "mask":
            layer = np.where(any_invalid[:, None], np.nan, 1.0)
        elif name == "contributing_area":
            layer = np.full(shape, res * res)
        else:
            layer = np.broadcast_to(theta[:, None, None, :], shape)
        layers.append(np.asarray(layer, dtype=np.float32))
    data = np.concatenate(layers, axis=1) if len(layers) > 1 else layers[0]
    out = xr.DataArray(
        data, dims=("t", "bands", "y", "x"),
        coords={"t": ordered["t"].values, "bands": [*bands, *extras], "y": ordered["y"].values,
                "x": ordered["x"].values},
        name=cube.name,
    )
    result: xr.DataArray = with_meta(out, cube, **{COEFFICIENT_ATTR: coefficient})
    return result
