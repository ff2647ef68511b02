"""``load_url``, and what it shares with ``load_stac``: which URLs a job may read, and reading a
GeoTIFF band onto a cube's grid.

**Which URLs a job may read** (:class:`UrlPolicy`, from ``services["url_policy"]``):

- Local files: an absolute path or a ``file://`` URL (host empty or ``localhost``) of a file
  the backend's process can read, anywhere on the machine, *except* inside the backend's own
  folders (``UrlPolicy.private_dirs``: the job results of every user); the path is resolved
  (``..``, symbolic links) before that check. Relative paths are refused: a job has no working
  directory of its own. The local backend serves one user on their own machine, whose files
  these are; its state folder is the one place that holds other jobs' (and users') data.
- http(s) URLs, of any host including this one and loopback, are fetched only when the backend
  sets ``allow_remote_namespaces`` (``UrlPolicy.allow_remote``), as for UDP namespaces: off by
  default, since a backend that fetches what a user names can be made to reach any server its
  machine can. Every link followed (a catalogue's children, an item's assets) passes the same
  check. Other schemes (``s3://``, ...) are refused.
- No file may make GDAL read another: rasters open with the GTiff driver only (not as a VRT,
  whatever their name), and GeoJSON must parse as JSON before GDAL sees it.

Nothing here fetches anything at validation: only evaluating a node reads its URL.

**Reading rasters**: :func:`read_band` reads one band of an open dataset onto a :class:`Grid`.
When the file lies on the grid (same CRS and pixel size, whole-pixel offset) it reads just the
window the grid covers, pixel for pixel; otherwise GDAL's warper (``rasterio.warp.reproject``,
nearest neighbour) reprojects onto the grid, reading only the source blocks it needs. Nodata
becomes NaN.

**load_url** reads a GeoTIFF as a raster cube ``(bands, y, x)`` on the file's own grid, without
a ``t`` dimension (a GeoTIFF holds no time; the openEO process leaves the dimensions to the
file), and GeoJSON or (Geo)Parquet as a :class:`VectorCube` of its geometries.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import numpy as np
import rasterio
import rasterio.warp
import requests
import xarray as xr
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from openeo_upscale.backend.engine.context import Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.cubes_spatial import Grid, VectorCube
from openeo_upscale.backend.engine.registry import PROCESSES
from openeo_upscale.backend.udp import download

__all__ = ["MAX_REMOTE_BYTES", "RASTER_FORMATS", "VECTOR_FORMATS", "UrlPolicy", "float_type", "read_band"]

MAX_REMOTE_BYTES = 256 * 2**20
"""Largest document fetched whole over http(s) (a STAC JSON file, a GeoJSON or Parquet file)."""

RASTER_FORMATS = frozenset({"gtiff", "geotiff", "tiff", "cog"})
"""``load_url`` formats read as a raster cube (case-insensitive)."""
VECTOR_FORMATS = {"geojson": "GeoJSON", "json": "GeoJSON", "parquet": "Parquet", "geoparquet": "Parquet"}
"""``load_url`` formats read as a vector cube (case-insensitive) and the reader they use."""


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs a job may read (the module docstring says why)."""

    allow_remote: bool = False
    """Fetch http(s) URLs (the backend's ``allow_remote_namespaces``)."""
    timeout: float = 10.0
    """Seconds one remote request may take."""
    private_dirs: tuple[Path, ...] = ()
    """Folders no job may read from (the backend's job results)."""

    @classmethod
    def of(cls, services: Mapping[str, Any]) -> UrlPolicy:
        """The policy in ``services["url_policy"]`` (a UrlPolicy or a mapping of its fields)."""
        value = services.get("url_policy")
        if isinstance(value, UrlPolicy):
            return value
        if isinstance(value, Mapping):
            return cls(
                allow_remote=bool(value.get("allow_remote", False)),
                timeout=float(value.get("timeout", 10.0)),
                private_dirs=tuple(Path(p) for p in value.get("private_dirs", ())),
            )
        return cls()

    def locate(self, url: Any, process: str) -> str:
        """The local path or http(s) URL `url` names, if a job may read it; else ProcessArgumentError."""
        if not isinstance(url, str) or not url or "\0" in url:
            raise ProcessArgumentError(f"{process}: 'url' must be a non-empty string", parameter="url")
        parsed = urlparse(url)
        scheme = parsed.scheme.lower()
        if scheme in ("http", "https"):
            if not self.allow_remote:
                raise ProcessArgumentError(
                    f"{process}: remote URL '{url}' not fetched: this backend runs offline; set "
                    "allow_remote_namespaces in its configuration to let jobs fetch http(s) URLs, or "
                    "give a local file", parameter="url")
            return url
        if scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise ProcessArgumentError(
                    f"{process}: '{url}' names a file on another host; only local files are read",
                    parameter="url")
            path = Path(url2pathname(unquote(parsed.path)))
        elif scheme and len(scheme) > 1:  # one letter: a Windows drive, not a scheme
            raise ProcessArgumentError(
                f"{process}: URL scheme '{scheme}' is not supported; give a local file or an http(s) URL",
                parameter="url")
        else:
            path = Path(url)
        return str(self._local(path, url, process))

    def _local(self, path: Path, url: str, process: str) -> Path:
        if not path.is_absolute():
            raise ProcessArgumentError(
                f"{process}: relative path '{url}' refused: give an absolute path or a file:// URL",
                parameter="url")
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:
            raise ProcessArgumentError(f"{process}: cannot resolve '{url}': {exc}", parameter="url") from exc
        for folder in self.private_dirs:
            try:
                inside = resolved.is_relative_to(folder.resolve())
            except (OSError, RuntimeError):
                continue
            if inside:
                raise ProcessArgumentError(
                    f"{process}: '{url}' is inside the backend's own folders (job results), which jobs "
                    "may not read", parameter="url")
        try:
            exists = resolved.is_file()
        except (OSError, ValueError):
            exists = False
        if not exists:
            raise ProcessArgumentError(f"{process}: no file at '{url}'", parameter="url")
        return resolved

    def fetch(self, url: str, process: str) -> bytes:
        """The whole document at an http(s) `url` (already located), within the timeout and size cap."""
        try:
            return download(url, timeout=self.timeout, max_bytes=MAX_REMOTE_BYTES)
        except (requests.RequestException, ValueError) as exc:
            raise ProcessArgumentError(f"{process}: cannot fetch '{url}': {exc}", parameter="url") from exc

    def gdal_options(self) -> dict[str, Any]:
        """GDAL settings for opening rasters under this policy (timeouts of remote reads)."""
        return {"GDAL_HTTP_TIMEOUT": max(1, math.ceil(self.timeout)),
                "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


def is_remote(href: str) -> bool:
    """Whether `href` is an http(s) URL."""
    return urlparse(href).scheme.lower() in ("http", "https")


def float_type(dtypes: Sequence[Any]) -> type[np.floating[Any]]:
    """The float type holding every value of `dtypes` exactly (float32 for up to 16-bit integers)."""
    small = all(np.dtype(d).kind in "biuf" and np.dtype(d).itemsize <= (4 if np.dtype(d).kind == "f" else 2)
                for d in dtypes)
    return np.float32 if small else np.float64


def epsg_of(src: DatasetReader, what: str) -> int:
    """The EPSG code of an open raster's CRS."""
    code = src.crs.to_epsg() if src.crs else None
    if code is None:
        raise ProcessArgumentError(f"{what} has no CRS with an EPSG code")
    return int(code)


def _offset(src: Affine, grid: Affine) -> tuple[int, int] | None:
    """(column, row) of the source pixel at the grid's first pixel, when the grids share pixels."""
    if src.b or src.d or grid.b or grid.d:
        return None
    tol = 1e-6 * abs(grid.a)
    if abs(src.a - grid.a) > tol or abs(src.e - grid.e) > tol:
        return None
    col, row = (grid.c - src.c) / src.a, (grid.f - src.f) / src.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(col), round(row)


def _nodata_to_nan(data: np.ndarray, nodata: float | None, dtype: Any) -> np.ndarray:
    values = data.astype(dtype)
    if nodata is not None:
        values[np.isnan(values) if math.isnan(nodata) else data == nodata] = np.nan
    return values


def read_band(src: DatasetReader, index: int, grid: Grid, nodata: float | None, dtype: Any) -> np.ndarray:
    """Band `index` (1-based) of `src` on `grid`, NaN where nodata or not covered (see the module)."""
    out = np.full((grid.height, grid.width), np.nan, dtype=dtype)
    offset = _offset(src.transform, grid.transform) if epsg_of(src, "the raster") == grid.crs else None
    if offset is not None:
        col0, row0 = offset
        c_lo, c_hi = max(0, col0), min(src.width, col0 + grid.width)
        r_lo, r_hi = max(0, row0), min(src.height, row0 + grid.height)
        if c_lo < c_hi and r_lo < r_hi:
            data = src.read(index, window=Window(c_lo, r_lo, c_hi - c_lo, r_hi - r_lo))
            out[r_lo - row0:r_hi - row0, c_lo - col0:c_hi - col0] = _nodata_to_nan(data, nodata, dtype)
        return out
    rasterio.warp.reproject(
        source=rasterio.band(src, index),
        destination=out,
        dst_transform=grid.transform,
        dst_crs=CRS.from_epsg(grid.crs).to_wkt(),
        src_nodata=nodata,
        dst_nodata=np.nan,
        resampling=Resampling.nearest,
    )
    return out


def open_raster(href: str, what: str, process: str) -> DatasetReader:
    """`href` opened with rasterio as a GeoTIFF; anything else is a ProcessArgumentError naming `what`.

    Only GDAL's GTiff driver may open it: a VRT (whatever its name) could make GDAL read files the
    URL policy refuses.
    """
    try:
        return rasterio.open(href, driver="GTiff")
    except RasterioIOError as exc:
        raise ProcessArgumentError(f"{process}: cannot read {what} ('{href}') as a GeoTIFF: {exc}") from exc


# -- load_url ----------------------------------------------------------------------------------------


def _load_geotiff(href: str, policy: UrlPolicy) -> xr.DataArray:
    with rasterio.Env(**policy.gdal_options()), open_raster(href, "the file", "load_url") as src:
        epsg = epsg_of(src, f"the file '{href}'")
        if src.transform.b or src.transform.d or src.transform.e >= 0:
            raise ProcessArgumentError(f"the file '{href}' is not north up", parameter="url")
        grid = Grid(epsg, src.transform, src.width, src.height)
        dtype = float_type(src.dtypes)
        data = np.stack([read_band(src, i, grid, src.nodatavals[i - 1], dtype)
                         for i in range(1, src.count + 1)])
        names = [d or f"band_{i}" for i, d in enumerate(src.descriptions, start=1)]
    ys, xs = grid.centres()
    return xr.DataArray(data, dims=("bands", "y", "x"), coords={"bands": names, "y": ys, "x": xs},
                        attrs={"crs": epsg, "resolution": float(grid.resolution[0]), "nodata": np.nan})


def _load_vector(href: str, reader: str, policy: UrlPolicy) -> VectorCube:
    # Imported here: geopandas costs a real job's start half a second, and few graphs need it.
    import geopandas

    try:
        data = policy.fetch(href, "load_url") if is_remote(href) else Path(href).read_bytes()
        if reader == "GeoJSON":
            # GDAL opens by content: JSON first, so no other driver (an OGR VRT reading other
            # files) gets it.
            doc = json.loads(data)
            if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
                raise ValueError("not a GeoJSON object")
        frame = (geopandas.read_parquet(io.BytesIO(data)) if reader == "Parquet"
                 else geopandas.read_file(io.BytesIO(data), engine="pyogrio"))
    except ProcessArgumentError:
        raise
    except Exception as exc:  # pyogrio, pyarrow, json and geopandas each raise their own errors
        raise ProcessArgumentError(f"load_url: cannot read '{href}' as {reader}: {exc}",
                                   parameter="url") from exc
    epsg = 4326
    if frame.crs is not None:
        code = frame.crs.to_epsg()
        if code is None:
            raise ProcessArgumentError(f"load_url: the CRS of '{href}' has no EPSG code", parameter="url")
        epsg = int(code)
    # Features without a geometry have nothing to aggregate or filter by: left out.
    geometries = [g for g in frame.geometry if g is not None and not g.is_empty]
    return VectorCube(geometries, epsg)


@PROCESSES.register("load_url")
def load_url(args: Args, ctx: EvalContext) -> xr.DataArray | VectorCube:
    """A GeoTIFF as a raster cube ``(bands, y, x)`` on its own grid (bands named by the file's band
    descriptions, else ``band_1``...), or GeoJSON / (Geo)Parquet as a vector cube of its
    geometries (properties are not kept). ``url`` as :class:`UrlPolicy` allows; ``options`` are
    accepted and unused."""
    policy = UrlPolicy.of(ctx.services)
    fmt = str(args["format"])
    key = fmt.lower()
    if key not in RASTER_FORMATS and key not in VECTOR_FORMATS:
        raise ProcessArgumentError(
            f"load_url: format '{fmt}' is not supported; use GTiff, GeoJSON or Parquet", parameter="format")
    href = policy.locate(args["url"], "load_url")
    if key in RASTER_FORMATS:
        return _load_geotiff(href, policy)
    return _load_vector(href, VECTOR_FORMATS[key], policy)
