"""Vector file formats: reading an area of interest from a file, writing a tile grid to one.

The format follows the file name's suffix, so a typo in a suffix is an error rather than a guess.
GeoParquet needs `pyarrow`; the other formats go through GDAL (pyogrio).
"""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from openeo_upscale.errors import GridError

# suffix -> format name; ".json" is read as GeoJSON because that is what openEO tools write.
FORMATS: dict[str, str] = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GPKG",
    ".parquet": "GeoParquet",
    ".geoparquet": "GeoParquet",
    ".shp": "ESRI Shapefile",
}


def vector_format(path: str | os.PathLike[str]) -> str:
    """The format of `path` from its suffix (`GeoJSON`, `GPKG`, `GeoParquet` or `ESRI Shapefile`)."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise GridError(f"unknown vector file format {suffix or '(no suffix)'!r} for {path}; "
                        f"expected one of {known}") from None


def read_vector(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """Every feature of a vector file as one GeoDataFrame (all layers of a GeoPackage).

    Raises GridError for a missing file, an unknown suffix or a file GDAL/pyarrow cannot read.
    """
    file = Path(path)
    fmt = vector_format(file)
    if not file.exists():
        raise GridError(f"AOI file not found: {file}")
    try:
        if fmt == "GeoParquet":
            return gpd.read_parquet(file)
        if fmt == "GPKG":
            # Reading a GeoPackage without naming a layer warns when it has several; the AOI is
            # everything in the file, so read every layer that has geometries.
            layers = [str(name) for name, geometry_type in pyogrio.list_layers(file) if geometry_type]
            if not layers:
                raise GridError(f"{file} has no layer with geometries")
            frames = [gpd.read_file(file, layer=layer, engine="pyogrio") for layer in layers]
            frames = [f.to_crs(frames[0].crs) if f.crs and frames[0].crs else f for f in frames]
            return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
        return gpd.read_file(file, engine="pyogrio")
    except GridError:
        raise
    except ImportError as exc:
        raise GridError(f"cannot read {file}: {exc}") from exc
    except Exception as exc:  # GDAL and pyarrow raise their own error types
        raise GridError(f"cannot read {file} as {fmt}: {exc}") from exc


def write_tiles(frame: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a tile GeoDataFrame to `.geojson`, `.gpkg` (layer `tiles`) or `.parquet`.

    Returns the path written. Raises GridError for an unknown suffix, and for Shapefiles, whose
    10-character field names cannot hold the tile columns.
    """
    file = Path(path)
    fmt = vector_format(file)
    if fmt == "ESRI Shapefile":
        raise GridError(f"cannot write tiles to {file}: a Shapefile truncates field names such as "
                        "aoi_fraction; use .gpkg, .geojson or .parquet")
    file.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "GPKG":
        # A GeoPackage holds several layers; replacing the file keeps stale layers from lingering.
        file.unlink(missing_ok=True)
    try:
        if fmt == "GeoParquet":
            frame.to_parquet(file, index=False)
        elif fmt == "GPKG":
            frame.to_file(file, driver="GPKG", layer="tiles", engine="pyogrio")
        else:
            frame.to_file(file, driver=fmt, engine="pyogrio")
    except ImportError as exc:
        raise GridError(f"cannot write {file}: {exc}") from exc
    return file
