"""The job creator's parameter logic: values per task from the shared UDPs, and the checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely.geometry

from openeo_upscale.campaign import (
    CampaignError,
    ParameterError,
    Udp,
    parameters_for,
    validate_campaign,
    validate_parameters,
)
from openeo_upscale.campaign.validation import check_tile_ids, tile_id_problem
from openeo_upscale.grid import tiles

BBOX_WITH_CRS = {
    "id": "utm_box", "process_graph": {},
    "parameters": [
        {"name": "extent", "schema": {"type": "object", "subtype": "bounding-box",
                                      "required": ["west", "south", "east", "north"],
                                      "properties": {"west": {"type": "number"}, "south": {"type": "number"},
                                                     "east": {"type": "number"}, "north": {"type": "number"},
                                                     "crs": {"anyOf": [{"type": "integer", "minimum": 1000},
                                                                       {"type": "string"}]}}}},
        {"name": "year", "schema": {"type": "integer"}, "optional": True, "default": 2023},
        {"name": "nodata", "schema": {"type": ["number", "null"]}, "optional": True, "default": None},
    ],
}
BOOKKEEPING = {"tile_id", "epsg", "west", "south", "east", "north", "area_km2", "aoi_fraction",
               "state", "job_id", "backend", "attempts"}
TEMPORAL = ["2023-05-01", "2023-07-01"]


@pytest.fixture(scope="module")
def frame() -> gpd.GeoDataFrame:
    return tiles((4.35, 51.10, 4.45, 51.20), size=5000)


@pytest.fixture
def row(frame: gpd.GeoDataFrame) -> dict[str, Any]:
    values = frame.iloc[0].to_dict()
    values.update(state="pending", job_id="j-1", backend="local", attempts=np.int64(0))
    return values


@pytest.fixture
def bap(udp_dir: Path) -> Udp:
    return Udp.from_file(udp_dir / "bap_composite.json", namespace="https://example.org/bap.json")


@pytest.fixture
def max_ndvi(udp_dir: Path) -> Udp:
    return Udp.from_file(udp_dir / "max_ndvi.json")


def test_udp_from_file_and_dict(bap: Udp, udp_dir: Path) -> None:
    assert bap.process_id == "bap_composite"
    assert bap.namespace == "https://example.org/bap.json"
    assert bap.parameter_names == ["geometry", "temporal_extent", "bands", "max_cloud_cover"]
    assert Udp.from_dict(bap.definition, bap.namespace) == bap
    with pytest.raises(ParameterError, match="no 'id'"):
        Udp.from_dict({"parameters": []})
    with pytest.raises(ParameterError, match="cannot read UDP"):
        Udp.from_file(udp_dir / "absent.json")


def test_bap_gets_geojson_in_4326_matching_the_tile(bap: Udp, row: dict[str, Any]) -> None:
    values = parameters_for(bap, row, defaults={"temporal_extent": TEMPORAL})
    assert values["geometry"]["type"] == "Polygon"
    assert shapely.geometry.shape(values["geometry"]).bounds == pytest.approx(row["geometry"].bounds)
    assert 4.0 < values["geometry"]["coordinates"][0][0][0] < 5.0  # lon/lat, not UTM metres
    assert values["bands"] == ["B04", "B03", "B02"] and values["max_cloud_cover"] == 75
    assert set(values) == {"geometry", "temporal_extent", "bands", "max_cloud_cover"}
    json.dumps(values)
    validate_parameters(bap, values, task_id=row["tile_id"])


def test_max_ndvi_bbox_follows_its_crs_property(max_ndvi: Udp, row: dict[str, Any]) -> None:
    # The shared max_ndvi.json declares `crs` in its bbox schema and passes bbox straight to
    # load_collection, so it gets the exact UTM tile.
    values = parameters_for(max_ndvi, row, defaults={"temporal_extent": TEMPORAL})
    assert values["bbox"]["crs"] == 32631 and values["bbox"]["west"] == row["west"]
    validate_parameters(max_ndvi, values, task_id=row["tile_id"])


def test_bbox_without_crs_property_gets_lonlat_bounds(max_ndvi: Udp, row: dict[str, Any]) -> None:
    doc = copy.deepcopy(max_ndvi.definition)
    del doc["parameters"][0]["schema"]["properties"]["crs"]
    udp = Udp.from_dict(doc)
    values = parameters_for(udp, row, defaults={"temporal_extent": TEMPORAL})
    west, south, east, north = row["geometry"].bounds
    assert values["bbox"] == pytest.approx({"west": west, "south": south, "east": east, "north": north})
    validate_parameters(udp, values, task_id=row["tile_id"])


def test_bbox_with_crs_property_gets_the_native_utm_extent(row: dict[str, Any]) -> None:
    udp = Udp.from_dict(BBOX_WITH_CRS)
    values = parameters_for(udp, row)
    assert values["extent"] == {"west": row["west"], "south": row["south"], "east": row["east"],
                                "north": row["north"], "crs": 32631}
    assert values["nodata"] is None and values["year"] == 2023
    validate_parameters(udp, values, task_id="t")


def test_anyof_with_a_bbox_branch_prefers_the_utm_box(udp_dir: Path, row: dict[str, Any]) -> None:
    udp = Udp.from_file(udp_dir / "max_ndvi_composite.json")
    values = parameters_for(udp, row, defaults={"temporal_extent": TEMPORAL})
    assert values["spatial_extent"]["crs"] == 32631
    validate_parameters(udp, values, task_id="t")


def test_geometry_from_wkt_row_as_stored(bap: Udp, row: dict[str, Any]) -> None:
    stored = dict(row, geometry=row["geometry"].wkt)
    values = parameters_for(bap, stored, defaults={"temporal_extent": TEMPORAL})
    assert shapely.geometry.shape(values["geometry"]).equals(row["geometry"])


def test_precedence_column_then_defaults_then_schema(bap: Udp, row: dict[str, Any]) -> None:
    defaults = {"temporal_extent": TEMPORAL, "max_cloud_cover": 50}
    assert parameters_for(bap, row, defaults=defaults)["max_cloud_cover"] == 50
    with_column = dict(row, max_cloud_cover=np.int64(20))
    assert parameters_for(bap, with_column, defaults=defaults)["max_cloud_cover"] == 20
    assert parameters_for(bap, dict(row, max_cloud_cover=np.nan), defaults=defaults)["max_cloud_cover"] == 50
    assert parameters_for(bap, row)["max_cloud_cover"] == 75
    value = parameters_for(bap, dict(row, max_cloud_cover=np.int64(20)))["max_cloud_cover"]
    assert type(value) is int


def test_column_map(bap: Udp, row: dict[str, Any]) -> None:
    mapped = dict(row, cc=30, period=("2022-01-01", "2022-02-01"))
    values = parameters_for(bap, mapped, column_map={"max_cloud_cover": "cc", "temporal_extent": "period"})
    assert values["max_cloud_cover"] == 30 and values["temporal_extent"] == ["2022-01-01", "2022-02-01"]


def test_bookkeeping_columns_never_leak(bap: Udp, max_ndvi: Udp, row: dict[str, Any]) -> None:
    for udp in (bap, max_ndvi, Udp.from_dict(BBOX_WITH_CRS)):
        values = parameters_for(udp, row, defaults={"temporal_extent": TEMPORAL})
        assert set(values) <= set(udp.parameter_names)
        assert not set(values) & BOOKKEEPING


@pytest.mark.parametrize(("change", "parameter", "rule"), [
    ({"temporal_extent": None}, "temporal_extent", "required"),
    ({"max_cloud_cover": "low"}, "max_cloud_cover", "type"),
    ({"max_cloud_cover": 12.5}, "max_cloud_cover", "type"),
    ({"max_cloud_cover": True}, "max_cloud_cover", "type"),
    ({"bands": ["B04", "B99"]}, "bands", "enum"),
    ({"max_cloud_cover": 101}, "max_cloud_cover", "maximum"),
    ({"max_cloud_cover": -1}, "max_cloud_cover", "minimum"),
    ({"bands": []}, "bands", "minItems"),
    ({"temporal_extent": ["2023-01-01"]}, "temporal_extent", "minItems"),
    ({"temporal_extent": ["2023-01-01", "2023-02-01", "2023-03-01"]}, "temporal_extent", "maxItems"),
    ({"temporal_extent": ["2023-01-01", 5]}, "temporal_extent", "anyOf"),
    ({"surprise": 1}, "surprise", "unknown"),
    ({"temporal_extent": ["2023-13-45", "yesterday"]}, "temporal_extent", "anyOf"),  # format date
    ({"temporal_extent": ["2023-02-30", "2023-05-01"]}, "temporal_extent", "anyOf"),  # no such day
    ({"temporal_extent": ["2023-07-01", "2023-05-01"]}, "temporal_extent", "subtype"),  # out of order
    ({"temporal_extent": [None, None]}, "temporal_extent", "subtype"),  # unbounded at both ends
    ({"geometry": {"type": "Polygon", "coordinates": "x"}}, "geometry", "subtype"),  # not GeoJSON
])
def test_each_rule_violation_names_task_parameter_and_rule(
        bap: Udp, row: dict[str, Any], change: dict[str, Any], parameter: str, rule: str) -> None:
    values = parameters_for(bap, row, defaults={"temporal_extent": TEMPORAL})
    values.update(change)
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(ParameterError) as caught:
        validate_parameters(bap, values, task_id="T-7")
    message = str(caught.value)
    assert "task T-7" in message and repr(parameter) in message and repr(rule) in message
    assert (caught.value.task_id, caught.value.parameter, caught.value.rule) == ("T-7", parameter, rule)


def test_type_lists_and_null(row: dict[str, Any]) -> None:
    udp = Udp.from_dict(BBOX_WITH_CRS)
    values = parameters_for(udp, row)
    validate_parameters(udp, dict(values, nodata=-1.5), task_id="t")
    validate_parameters(udp, dict(values, year=2024.0), task_id="t")  # JSON has no int/float split
    with pytest.raises(ParameterError, match="'nodata' breaks rule 'type'"):
        validate_parameters(udp, dict(values, nodata="x"), task_id="t")
    with pytest.raises(ParameterError, match=r"'extent' breaks rule 'anyOf': at \.crs: 12 fits none of"):
        validate_parameters(udp, dict(values, extent=dict(values["extent"], crs=12)), task_id="t")


@pytest.mark.parametrize("interval", [
    ["2023-05-01", "2023-07-01"], ["2023-05-01T00:00:00Z", None], [None, "2023-07-01T12:30:00+02:00"],
    ["2023-05-01", "2023-05-01T00:00:01Z"],
])
def test_real_intervals_pass(bap: Udp, row: dict[str, Any], interval: list[str | None]) -> None:
    validate_parameters(bap, parameters_for(bap, row, defaults={"temporal_extent": interval}), task_id="t")


@pytest.mark.parametrize(("tile_id", "safe"), [
    ("32631_590000_5660000_5000", True), ("31UFS-0.1", True), ("..", False), (".", False), ("", False),
    ("../../x", False), ("/abs", False), ("a/b", False), ("a b", False), ("tile\x00", False),
    ("C:x", False), ("x" * 201, False),
])
def test_tile_ids_must_be_plain_folder_names(tile_id: str, safe: bool) -> None:
    assert (tile_id_problem(tile_id) is None) is safe
    if not safe:
        with pytest.raises(CampaignError, match="1 tile ids are not safe folder names"):
            check_tile_ids(["ok", tile_id])


def test_validate_campaign_passes_a_good_campaign(bap: Udp, frame: gpd.GeoDataFrame) -> None:
    validate_campaign(bap, frame, defaults={"temporal_extent": TEMPORAL})


def test_validate_campaign_refuses_up_front_and_lists_the_tasks(bap: Udp, frame: gpd.GeoDataFrame) -> None:
    tasks = frame.copy()
    tasks["max_cloud_cover"] = None
    bad = [tasks.index[1], tasks.index[4]]
    tasks.loc[bad[0], "max_cloud_cover"] = 150
    tasks.loc[bad[1], "max_cloud_cover"] = -3
    with pytest.raises(ParameterError) as caught:
        validate_campaign(bap, tasks, defaults={"temporal_extent": TEMPORAL})
    message = str(caught.value)
    assert message.startswith(f"2 of {len(tasks)} tasks have invalid parameters")
    for index, rule in zip(bad, ("maximum", "minimum"), strict=True):
        tile_id = tasks.loc[index, "tile_id"]
        assert f"task {tile_id}: parameter 'max_cloud_cover' breaks rule '{rule}'" in message
    assert len(caught.value.problems) == 2


def test_validate_campaign_caps_the_listing(bap: Udp, frame: gpd.GeoDataFrame) -> None:
    with pytest.raises(ParameterError) as caught:
        validate_campaign(bap, frame, max_problems=3)  # no temporal_extent anywhere
    message = str(caught.value)
    assert message.startswith(f"{len(frame)} of {len(frame)} tasks")
    assert len(caught.value.problems) == 3 and f"3 of {len(frame)} problems shown" in message


def test_validate_campaign_refuses_unknown_names(bap: Udp, frame: gpd.GeoDataFrame) -> None:
    with pytest.raises(ParameterError, match="'max_cloud'"):
        validate_campaign(bap, frame, defaults={"temporal_extent": TEMPORAL, "max_cloud": 10})
    with pytest.raises(ParameterError, match="'cloud'"):
        validate_campaign(bap, frame, defaults={"temporal_extent": TEMPORAL}, column_map={"cloud": "cc"})


def test_rows_from_iterrows_give_plain_json(max_ndvi: Udp, frame: gpd.GeoDataFrame) -> None:
    for _, series in frame.iterrows():
        values = parameters_for(max_ndvi, series, defaults={"temporal_extent": TEMPORAL})
        assert json.loads(json.dumps(values)) == values
        assert all(type(values["bbox"][k]) is int for k in ("west", "south", "east", "north", "crs"))
    as_numpy = {"bbox": values["bbox"], "temporal_extent": np.array(TEMPORAL)}
    validate_parameters(max_ndvi, as_numpy, task_id="t")


def test_a_bbox_mapping_in_a_column_is_used_as_a_box_or_read_as_a_geometry() -> None:
    utm = {"west": 590000.0, "south": 5660000.0, "east": 595000.0, "north": 5665000.0, "crs": 32631}
    with_crs = Udp.from_dict({"id": "p", "parameters": [
        {"name": "bbox", "schema": {"type": "object", "subtype": "bounding-box",
                                    "properties": {"west": {}, "crs": {}}}}]})
    assert parameters_for(with_crs, {"tile_id": "t", "bbox": utm}) == {"bbox": utm}
    geojson = Udp.from_dict({"id": "p", "parameters": [
        {"name": "bbox", "schema": {"type": "object", "subtype": "geojson"}}]})
    shape = parameters_for(geojson, {"tile_id": "t", "bbox": utm})["bbox"]
    assert shape["type"] == "Polygon"
    lon, lat = shape["coordinates"][0][0]
    assert 4.2 < lon < 4.4 and 51.0 < lat < 51.2
    with pytest.raises(ParameterError, match="GeoJSON"):
        parameters_for(geojson, {"tile_id": "t", "bbox": {"type": "Nonsense"}})
