"""`load_aoi`: every accepted input type, its normalisation, and the clear errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box, mapping

from openeo_upscale.errors import GridError
from openeo_upscale.grid import load_aoi, tiles

from .checks import area_m2

ANTWERP = (4.35, 51.10, 4.45, 51.20)
with np.errstate(invalid="ignore"):  # shapely warns about the NaN it is asked to store
    NAN_POLYGON = Polygon([(4.35, 51.1), (float("nan"), 51.15), (4.45, 51.2)])
ANTWERP_IDS = {f"32631_{x}_{y}_5000" for x in (590000, 595000, 600000) for y in (5660000, 5665000, 5670000)}


def _ids(aoi: object, size: int = 5000) -> set[str]:
    return set(tiles(aoi, size)["tile_id"])


@pytest.mark.parametrize("aoi", [
    ANTWERP,
    list(ANTWERP),
    np.array(ANTWERP),
    {"west": 4.35, "south": 51.10, "east": 4.45, "north": 51.20},
    {"west": 4.35, "south": 51.10, "east": 4.45, "north": 51.20, "crs": "EPSG:4326"},
    {"west": 4.35, "south": 51.10, "east": 4.45, "north": 51.20, "crs": 4326},
    box(*ANTWERP),
    mapping(box(*ANTWERP)),
    {"type": "Feature", "properties": {}, "geometry": mapping(box(*ANTWERP))},
    {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(box(4.35, 51.10, 4.40, 51.20))},
        {"type": "Feature", "properties": {}, "geometry": mapping(box(4.40, 51.10, 4.45, 51.20))}]},
    gpd.GeoSeries([box(*ANTWERP)], crs=4326),
    gpd.GeoDataFrame({"name": ["a", "b"]},
                     geometry=[box(4.35, 51.10, 4.40, 51.20), box(4.40, 51.10, 4.45, 51.20)], crs=4326),
], ids=["tuple", "list", "array", "dict", "dict-epsg-string", "dict-epsg-int", "shapely", "geojson-geometry",
        "geojson-feature", "geojson-collection", "geoseries", "geodataframe"])
def test_lonlat_inputs_give_the_reference_tiles(aoi: object) -> None:
    assert _ids(aoi) == ANTWERP_IDS
    assert shapely.equals(load_aoi(aoi).lonlat(), box(*ANTWERP))


def test_a_projected_bbox_dict_is_densified_then_reprojected() -> None:
    aoi = load_aoi({"west": 500000, "south": 5600000, "east": 700000, "north": 5800000, "crs": "EPSG:32631"})
    assert aoi.crs.to_epsg() == 32631
    coarse, dense = aoi.lonlat(), aoi.lonlat(250.0)
    assert len(dense.exterior.coords) > 3000  # 800 km of edges every 250 m
    # The bbox's edges are straight in UTM, hence curved in lon/lat: the densified outline is the
    # right one, and differs from the 4-corner one by far more than float noise.
    assert shapely.symmetric_difference(coarse, dense).area > 1e-4


def test_a_geodataframe_in_another_crs_is_reprojected() -> None:
    lonlat = gpd.GeoDataFrame(geometry=[box(*ANTWERP)], crs=4326)
    lambert = lonlat.to_crs(3035)  # ETRS89 / LAEA Europe
    aoi = load_aoi(lambert)
    assert aoi.crs.to_epsg() == 3035
    assert shapely.symmetric_difference(aoi.lonlat(), box(*ANTWERP)).area < 1e-6 * box(*ANTWERP).area
    assert _ids(lambert) == ANTWERP_IDS


@pytest.mark.parametrize(("suffix", "write"), [
    (".geojson", lambda frame, path: frame.to_file(path, driver="GeoJSON", engine="pyogrio")),
    (".json", lambda frame, path: frame.to_file(path, driver="GeoJSON", engine="pyogrio")),
    (".gpkg", lambda frame, path: frame.to_file(path, driver="GPKG", layer="aoi", engine="pyogrio")),
    (".parquet", lambda frame, path: frame.to_parquet(path)),
    (".shp", lambda frame, path: frame.to_file(path, driver="ESRI Shapefile", engine="pyogrio")),
])
def test_files_of_each_format(tmp_path: Path, suffix: str,
                              write: Callable[[gpd.GeoDataFrame, Path], None]) -> None:
    frame = gpd.GeoDataFrame({"name": ["antwerp"]}, geometry=[box(*ANTWERP)], crs=4326).to_crs(3035)
    path = tmp_path / f"aoi{suffix}"
    write(frame, path)
    assert _ids(path) == ANTWERP_IDS
    assert _ids(str(path)) == ANTWERP_IDS
    assert load_aoi(path).crs.to_epsg() == 3035


def test_every_layer_of_a_geopackage_is_part_of_the_aoi(tmp_path: Path) -> None:
    path = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[box(4.35, 51.10, 4.40, 51.20)], crs=4326).to_file(path, layer="west")
    east = gpd.GeoDataFrame(geometry=[box(4.40, 51.10, 4.45, 51.20)], crs=4326).to_crs(3035)
    east.to_file(path, layer="east")
    assert _ids(path) == ANTWERP_IDS


def test_antimeridian_bbox_becomes_two_parts() -> None:
    aoi = load_aoi((179.5, -17.0, -179.5, -16.0)).lonlat()
    assert isinstance(aoi, MultiPolygon) and len(aoi.geoms) == 2
    assert shapely.total_bounds(aoi).tolist() == [-180.0, -17.0, 180.0, -16.0]


def test_lonlat_geometry_beyond_180_is_wrapped() -> None:
    aoi = load_aoi(box(179.5, -17.0, 180.5, -16.0)).lonlat()
    expected = MultiPolygon([box(179.5, -17.0, 180.0, -16.0), box(-180.0, -17.0, -179.5, -16.0)])
    assert shapely.equals(aoi, expected)


def test_projected_aoi_across_the_antimeridian_is_cut_there() -> None:
    # PDC Mercator (EPSG:3832) is centred on 150°E, so a Fiji box is one polygon in it.
    fiji = gpd.GeoSeries([box(179.0, -17.0, -179.0 + 360.0, -16.0)], crs=4326)
    dense = shapely.segmentize(box(179.0, -17.0, 181.0, -16.0), 0.01)
    pacific = gpd.GeoSeries([dense], crs=4326).to_crs(3832)
    aoi = load_aoi(pacific).lonlat()
    expected = load_aoi(fiji).lonlat()
    assert isinstance(aoi, MultiPolygon)
    assert shapely.symmetric_difference(aoi, expected).area < 1e-9
    assert area_m2(aoi) == pytest.approx(area_m2(expected), rel=1e-6)


def test_an_invalid_polygon_is_repaired() -> None:
    bowtie = Polygon([(4.35, 51.10), (4.45, 51.20), (4.45, 51.10), (4.35, 51.20)])
    assert not bowtie.is_valid
    aoi = load_aoi(bowtie)
    assert aoi.geometry.is_valid and aoi.geometry.area == pytest.approx(0.005)
    assert _ids(bowtie) <= ANTWERP_IDS


def test_a_frame_without_crs_in_degrees_is_lonlat() -> None:
    assert _ids(gpd.GeoSeries([box(*ANTWERP)])) == ANTWERP_IDS


@pytest.mark.parametrize(("aoi", "message"), [
    (Polygon(), "AOI is empty"),
    (gpd.GeoDataFrame(geometry=[], crs=4326), "AOI is empty"),
    (gpd.GeoSeries([None, Polygon()], crs=4326), "AOI is empty"),
    ({"type": "FeatureCollection", "features": []}, "AOI is empty"),
    (Point(4.4, 51.1), "AOI has no area"),
    (LineString([(4.4, 51.1), (4.5, 51.2)]), "AOI has no area"),
    (Polygon([(4.0, 51.0), (4.5, 51.0), (5.0, 51.0), (4.0, 51.0)]), "make_valid leaves no area"),
    (Polygon([(4.35, 51.1), (4.35, 51.1), (4.35, 51.1)]), "make_valid leaves no area"),
    (NAN_POLYGON, "non-finite"),
    ((4.35, 51.10, 4.45), "needs 4 numbers"),
    ((4.35, "south", 4.45, 51.2), "needs 4 numbers"),
    ((4.35, 51.20, 4.45, 51.10), "south .* must be less than north"),
    ((4.35, 51.10, 4.35, 51.20), "west and east are equal"),
    ((4.35, 51.10, 184.45, 51.20), "longitudes must be within -180..180"),
    ((4.35, -91.0, 4.45, 51.20), "latitudes must be within -90..90"),
    ((4.35, 51.10, float("inf"), 51.20), "must be finite"),
    ({"west": 4.35, "south": 51.10, "east": 4.45}, "missing north"),
    ({"west": 4.35, "south": 51.10, "east": 4.45, "north": 51.2, "crs": "EPSG:999999"}, "unknown AOI crs"),
    ({"west": 600000, "south": 5600000, "east": 500000, "north": 5700000, "crs": 32631},
     r"west \(600000\) must be less than east \(500000\) in a projected CRS"),
    ({"type": "Polygon", "coordinates": "nonsense"}, "not valid GeoJSON"),
    (gpd.GeoSeries([box(500000, 5600000, 600000, 5700000)]), "has no CRS and its coordinates are not"),
    (42, "unsupported AOI type int"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_aois_are_clear_errors(aoi: object, message: str) -> None:
    with pytest.raises(GridError, match=message):
        load_aoi(aoi)
    with pytest.raises(GridError, match=message):
        tiles(aoi)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(GridError, match=r"unknown vector file format '\.kml'"):
        tiles(tmp_path / "aoi.kml")
    with pytest.raises(GridError, match="AOI file not found"):
        tiles(tmp_path / "missing.geojson")
    broken = tmp_path / "broken.geojson"
    broken.write_text("{not json")
    with pytest.raises(GridError, match=r"cannot read .*broken\.geojson as GeoJSON"):
        tiles(broken)
