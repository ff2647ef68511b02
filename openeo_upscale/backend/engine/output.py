"""Writing a job's result cube to files, named and described as Copernicus Data Space does.

`ResultWriter.save` is what the ``save_result`` process calls (through the job's services):

- ``GTiff``: one GeoTIFF per label of the temporal dimension, ``openEO_2023-05-01Z.tif``, or a
  single ``openEO.tif`` for a cube without one; bands become raster bands with their names as
  descriptions; CRS, transform and nodata set.
- ``PNG``: the same files as ``.png``, 8-bit grey, RGB or RGBA (values clipped to 0-255), for
  the visualisation UDPs that save pictures; no georeference.
- ``CSV``: ``timeseries.csv``, the values of a vector cube (``aggregate_spatial``), one row per
  geometry and date.
- ``netCDF``: one ``openEO.nc`` holding the whole cube (via xarray; dimensions t, bands, y, x
  as they are, CRS in a ``crs`` attribute).

Every file is written under a temporary name and renamed, and described as a STAC asset
(``file:size``, ``file:checksum``, ``proj:*``, ``eo:bands``) in `ResultWriter.assets`.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import xarray as xr
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

__all__ = ["FORMATS", "ResultWriter", "UnsupportedFormat"]

FORMATS = {"gtiff": "GTiff", "geotiff": "GTiff", "tiff": "GTiff", "netcdf": "netCDF", "nc": "netCDF",
           "png": "PNG", "csv": "CSV"}
"""Output format names accepted by ``save_result`` (case-insensitive) and their canonical form."""

_MEDIA = {"GTiff": "image/tiff; application=geotiff", "netCDF": "application/x-netcdf", "PNG": "image/png",
          "CSV": "text/csv"}
_PNG_BANDS = {1: "grey", 3: "RGB", 4: "RGBA"}


class UnsupportedFormat(ValueError):
    """``save_result`` was asked for a format this backend cannot write."""


class ResultWriter:
    """Writes result cubes into one job's results folder and remembers the assets it wrote."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.assets: dict[str, dict[str, Any]] = {}

    def save(self, cube: Any, format: str, options: Mapping[str, Any] | None = None) -> list[str]:
        """Write ``cube`` (an `xarray.DataArray`) in ``format``; returns the asset names written."""
        canonical = FORMATS.get(str(format).lower())
        if canonical is None:
            raise UnsupportedFormat(f"format '{format}' is not supported; use GTiff, netCDF, PNG or CSV")
        if canonical == "CSV":
            self.folder.mkdir(parents=True, exist_ok=True)
            return [self._csv(cube)]
        if not isinstance(cube, xr.DataArray):
            raise UnsupportedFormat(f"save_result needs a raster data cube, not a {type(cube).__name__}")
        self.folder.mkdir(parents=True, exist_ok=True)
        if canonical == "netCDF":
            return [self._netcdf(cube)]
        return self._per_date(cube, self._png if canonical == "PNG" else self._geotiff,
                              "png" if canonical == "PNG" else "tif")

    def discard(self, names: Sequence[str]) -> None:
        """Remove files this writer wrote (a result saved again in another format replaces them)."""
        for name in names:
            if self.assets.pop(name, None) is not None:
                (self.folder / name).unlink(missing_ok=True)

    # GeoTIFF ----------------------------------------------------------------------------------

    def _per_date(self, cube: xr.DataArray, write: Any, suffix: str) -> list[str]:
        """One file per label of the temporal dimension (``openEO_2023-05-01Z.tif``), or one
        ``openEO.tif`` for a cube without one."""
        if "t" in cube.dims:
            names = []
            for label in cube["t"].values:
                stamp = pd.Timestamp(label).strftime("%Y-%m-%d")
                names.append(write(cube.sel(t=label), f"openEO_{stamp}Z.{suffix}", stamp))
            return names
        return [write(cube, f"openEO.{suffix}", None)]

    def _geotiff(self, cube: xr.DataArray, name: str, date: str | None) -> str:
        extra = [d for d in cube.dims if d not in ("bands", "y", "x")]
        if extra:
            raise UnsupportedFormat(f"cannot write dimension(s) {extra} to GeoTIFF; reduce them first")
        if "bands" not in cube.dims:
            cube = cube.expand_dims(bands=["band"])
        cube = cube.transpose("bands", "y", "x")
        data = np.asarray(cube.values)
        dtype, nodata = _raster_type(data)
        values = np.where(np.isnan(data), nodata, data).astype(dtype) if data.dtype.kind == "f" else data
        values = values.astype(dtype, copy=False)
        epsg = int(cube.attrs.get("crs", 4326))
        transform = _transform(cube)
        bands = [str(b) for b in cube["bands"].values]
        path = self.folder / name
        temporary = path.with_name(path.name + ".part")
        with rasterio.open(temporary, "w", driver="GTiff", width=values.shape[2], height=values.shape[1],
                           count=values.shape[0], dtype=dtype, crs=f"EPSG:{epsg}", transform=transform,
                           nodata=nodata, compress="deflate", tiled=values.shape[1] >= 256 and
                           values.shape[2] >= 256) as dst:
            dst.write(values)
            for index, band in enumerate(bands, start=1):
                dst.set_band_description(index, band)
        os.replace(temporary, path)
        height, width = values.shape[1:]
        west, north = transform.c, transform.f
        east, south = west + transform.a * width, north + transform.e * height
        self._describe(path, "GTiff", {
            "proj:epsg": epsg,
            "proj:shape": [height, width],
            "proj:bbox": [west, south, east, north],
            "proj:transform": list(transform)[:6],
            "eo:bands": [{"name": band} for band in bands],
            "raster:bands": [{"name": band, "data_type": str(np.dtype(dtype)), "nodata": _json_number(nodata)}
                             for band in bands],
            **({"datetime": f"{date}T00:00:00Z"} if date else {}),
        })
        return name

    # PNG --------------------------------------------------------------------------------------

    def _png(self, cube: xr.DataArray, name: str, date: str | None) -> str:
        """An 8-bit grey, RGB or RGBA picture, as visualisation UDPs write them: values clipped to
        0-255 and rounded, no-data as 0. PNG holds no georeference, so none is written beside it."""
        if "bands" not in cube.dims:
            cube = cube.expand_dims(bands=["band"])
        extra = [d for d in cube.dims if d not in ("bands", "y", "x")]
        if extra:
            raise UnsupportedFormat(f"cannot write dimension(s) {extra} to PNG; reduce them first")
        count = cube.sizes["bands"]
        if count not in _PNG_BANDS:
            raise UnsupportedFormat(f"PNG takes 1 (grey), 3 (RGB) or 4 (RGBA) bands, not {count}")
        data = np.asarray(cube.transpose("bands", "y", "x").values, dtype=np.float64)
        values = np.rint(np.clip(np.nan_to_num(data, nan=0.0), 0, 255)).astype(np.uint8)
        path = self.folder / name
        temporary = path.with_name(path.name + ".part")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a picture: none intended
            with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
                    temporary, "w", driver="PNG", width=values.shape[2], height=values.shape[1],
                    count=count, dtype="uint8") as dst:
                dst.write(values)
        os.replace(temporary, path)
        bands = [str(b) for b in cube["bands"].values]
        self._describe(path, "PNG", {"eo:bands": [{"name": band} for band in bands],
                                     **({"datetime": f"{date}T00:00:00Z"} if date else {})})
        return name

    # CSV --------------------------------------------------------------------------------------

    def _csv(self, vector: Any) -> str:
        """The values of a vector cube (``aggregate_spatial``'s result): one row per geometry
        and date, ``feature_index``, ``date`` (when the cube has time), then one column per band."""
        values = getattr(vector, "values", None)
        if not isinstance(values, xr.DataArray) or "geometry" not in values.dims:
            raise UnsupportedFormat("CSV holds vector cubes with values (aggregate_spatial's result); "
                                    f"save a {type(vector).__name__} as GTiff or netCDF")
        series = values.rename({"geometry": "feature_index"})
        if "t" in series.dims:
            series = series.rename({"t": "date"})
        frame = series.to_series().unstack("bands") if "bands" in series.dims else series.to_frame("value")
        frame = frame.reset_index()
        if "date" in frame:
            frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        frame.columns = [str(c) for c in frame.columns]
        path = self.folder / "timeseries.csv"
        temporary = path.with_name(path.name + ".part")
        frame.to_csv(temporary, index=False)
        os.replace(temporary, path)
        self._describe(path, "CSV", {})
        return path.name

    # netCDF -----------------------------------------------------------------------------------

    def _netcdf(self, cube: xr.DataArray) -> str:
        name = "openEO.nc"
        path = self.folder / name
        temporary = path.with_name(path.name + ".part")
        dataset = cube.rename("data").to_dataset()
        dataset.attrs = {"crs": f"EPSG:{int(cube.attrs.get('crs', 4326))}",
                         "Conventions": "CF-1.8", "source": "openeo-upscale local backend"}
        for coord in ("bands",):
            if coord in dataset.coords:
                dataset = dataset.assign_coords({coord: [str(v) for v in dataset[coord].values]})
        dataset.to_netcdf(temporary, format="NETCDF4" if _has_netcdf4() else "NETCDF3_64BIT")
        os.replace(temporary, path)
        bands = [str(b) for b in cube["bands"].values] if "bands" in cube.dims else []
        self._describe(path, "netCDF", {"proj:epsg": int(cube.attrs.get("crs", 4326)),
                                        "eo:bands": [{"name": band} for band in bands]})
        return name

    # assets -----------------------------------------------------------------------------------

    def _describe(self, path: Path, fmt: str, fields: Mapping[str, Any]) -> None:
        data = path.read_bytes()
        self.assets[path.name] = {
            "href": path.name,
            "type": _MEDIA[fmt],
            "roles": ["data"],
            "title": path.name,
            "file:size": len(data),
            "file:checksum": "1220" + hashlib.sha256(data).hexdigest(),
            **fields,
        }


def _raster_type(data: np.ndarray) -> tuple[str, float | int]:
    """The GeoTIFF data type and nodata value for an array (floats keep NaN as nodata)."""
    if data.dtype.kind == "f":
        return ("float32" if data.dtype.itemsize <= 4 else "float64"), float("nan")
    if data.dtype.kind == "b":
        return "uint8", 255
    if data.dtype.kind == "u":
        return str(data.dtype), int(np.iinfo(data.dtype).max)
    return str(data.dtype), int(np.iinfo(data.dtype).min)


def _json_number(value: float | int) -> float | int | str:
    return "nan" if isinstance(value, float) and np.isnan(value) else value


def _transform(cube: xr.DataArray) -> Affine:
    """The affine transform of a cube whose x/y coordinates are pixel centres on a regular grid."""
    xs, ys = np.asarray(cube["x"].values, dtype=float), np.asarray(cube["y"].values, dtype=float)
    resolution = float(cube.attrs.get("resolution") or 0.0)
    dx = float(xs[1] - xs[0]) if xs.size > 1 else resolution or 1.0
    dy = float(ys[1] - ys[0]) if ys.size > 1 else -(resolution or 1.0)
    return Affine(dx, 0.0, float(xs[0]) - dx / 2, 0.0, dy, float(ys[0]) - dy / 2)


def _has_netcdf4() -> bool:
    try:
        import netCDF4  # noqa: F401
    except ImportError:
        return False
    return True
