"""``apply_polygon`` against independent numpy references, on a tiny UTM cube.

Every graph runs through the real evaluator. Which pixels a polygon holds is worked out with
shapely on the pixel centres; what the process got is recorded by a fake process in a copy of
the registry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely.geometry
import xarray as xr
from pyproj import Transformer

from openeo_upscale.backend.engine import Args, EvalContext, Evaluator, ProcessGraphError, default_registry
from openeo_upscale.backend.engine.cubes_spatial import VectorCube
from tests.backend.engine.helpers import node, p

EPSG = 32631
X0, Y0 = 600_000.0, 5_700_000.0  # upper-left corner of the test grid, 10 m pixels

TRIANGLE = shapely.geometry.Polygon([(X0 + 2, Y0 - 3), (X0 + 57, Y0 - 1), (X0 + 4, Y0 - 63)])
BOX = shapely.geometry.box(X0 + 71, Y0 - 88, X0 + 113, Y0 - 32)
FAR = shapely.geometry.box(X0 + 5_000, Y0 - 5_000, X0 + 5_100, Y0 - 4_900)
"""Two polygons in the cube (sharing no pixel) and one outside it."""


def make_cube(dtype: Any = np.float64) -> xr.DataArray:
    rng = np.random.default_rng(3)
    values = rng.integers(1, 500, size=(2, 2, 10, 12)).astype(dtype)
    if values.dtype.kind == "f":
        values[:, :, 2, 1] = np.nan  # nodata inside the triangle
    return xr.DataArray(
        values,
        dims=("t", "bands", "y", "x"),
        coords={
            "t": pd.to_datetime(["2023-06-01", "2023-06-06"]).values,
            "bands": ["B04", "B08"],
            "y": Y0 - (np.arange(10) + 0.5) * 10,
            "x": X0 + (np.arange(12) + 0.5) * 10,
        },
        attrs={"crs": EPSG, "resolution": 10.0, "nodata": 0},
    )


def lonlat(*polygons: shapely.geometry.Polygon) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of `polygons` (given in UTM) in longitude/latitude."""
    to_wgs84 = Transformer.from_crs(EPSG, 4326, always_xy=True)
    features = [
        {"type": "Feature", "properties": {},
         "geometry": shapely.geometry.mapping(shapely.transform(g, lambda xy: np.column_stack(
             to_wgs84.transform(xy[:, 0], xy[:, 1]))))}
        for g in polygons
    ]
    return {"type": "FeatureCollection", "features": features}


def inside(cube: xr.DataArray, polygon: shapely.geometry.Polygon) -> np.ndarray:
    """(y, x) flags of the pixel centres inside `polygon`."""
    xx, yy = np.meshgrid(cube["x"].values, cube["y"].values)
    return np.asarray(shapely.contains_xy(polygon, xx, yy))


def box_of(flags: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(flags.any(axis=1))[0], np.nonzero(flags.any(axis=0))[0]
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def apply_polygon(cube: xr.DataArray, process: dict[str, Any], evaluator: Evaluator | None = None,
                  params: dict[str, Any] | None = None, **arguments: Any) -> Any:
    graph = {"a": node("apply_polygon", result=True, data=p("cube"), process={"process_graph": process},
                       **arguments)}
    return (evaluator or Evaluator()).evaluate(graph, {"cube": cube, **(params or {})})


def recording() -> tuple[Evaluator, list[tuple[xr.DataArray, Any]]]:
    """An evaluator with a process ``record`` that keeps what it got and returns ``data``."""
    seen: list[tuple[xr.DataArray, Any]] = []

    def record(args: Args, ctx: EvalContext) -> Any:
        seen.append((args["data"], args.get("context")))
        return args["data"]

    registry = default_registry().copy()
    registry.add("record", record)
    return Evaluator(registry), seen


RECORD = {"r": node("record", result=True, data=p("data"), context=p("context"))}


def test_each_polygon_gets_its_box_with_mask_value_outside_and_results_go_back_inside() -> None:
    cube = make_cube()
    evaluator, seen = recording()
    out = apply_polygon(cube, RECORD, evaluator, geometries=lonlat(TRIANGLE, FAR, BOX), mask_value=999,
                        context={"band": "B08"})
    assert len(seen) == 2  # the polygon outside the cube is skipped
    expected = np.full(cube.shape, np.nan)
    for (got, context), polygon in zip(seen, [TRIANGLE, BOX], strict=True):
        flags = inside(cube, polygon)
        rows, cols = box_of(flags)
        part = cube.isel(y=rows, x=cols)
        np.testing.assert_array_equal(got["y"].values, part["y"].values)
        np.testing.assert_array_equal(got["x"].values, part["x"].values)
        assert got.dims == cube.dims and got.attrs["crs"] == EPSG and context == {"band": "B08"}
        within = flags[rows, cols]
        np.testing.assert_array_equal(got.values[..., ~within], 999)
        np.testing.assert_array_equal(got.values[..., within], part.values[..., within])  # NaN stays NaN
        expected[..., flags] = cube.values[..., flags]
    assert np.isnan(seen[0][0].values[:, :, 2, 1]).all()
    assert out.dims == cube.dims and out.attrs["crs"] == EPSG
    np.testing.assert_array_equal(out["x"].values, cube["x"].values)
    np.testing.assert_array_equal(out.values, expected)  # nodata outside both polygons


def test_a_process_using_the_cube_sees_only_its_polygon() -> None:
    """The variability map's shape: each pixel against its field's mean of row means (masked pixels
    are NaN, so means skip them)."""
    cube = make_cube()
    mean = {"process_graph": {"m": node("mean", result=True, data=p("data"))}}
    process = {
        "mx": node("reduce_dimension", data=p("data"), dimension="x", reducer=mean),
        "my": node("reduce_dimension", data={"from_node": "mx"}, dimension="y", reducer=mean),
        "d": node("divide", x=p("data"), y={"from_node": "my"}),
        "s": node("multiply", result=True, x={"from_node": "d"}, y=100),
    }
    vector = VectorCube([TRIANGLE, BOX], crs=EPSG)
    out = apply_polygon(cube, process, geometries=p("vector"), params={"vector": vector})
    expected = np.full(cube.shape, np.nan)
    for polygon in (TRIANGLE, BOX):
        flags = inside(cube, polygon)
        rows, cols = box_of(flags)
        box = np.where(flags[rows, cols], cube.values[..., rows, cols], np.nan)
        field = np.nanmean(np.nanmean(box, axis=-1), axis=-1)[..., None]
        expected[..., flags] = cube.values[..., flags] / field * 100
    np.testing.assert_allclose(out.values, expected)


def test_null_mask_value_makes_an_integer_cube_float_and_a_scalar_fills_the_polygon() -> None:
    cube = make_cube(np.int16)
    evaluator, seen = recording()
    apply_polygon(cube, RECORD, evaluator, geometries=lonlat(BOX))
    (got, _), = seen
    rows, cols = box_of(inside(cube, BOX))
    assert got.dtype == np.float32
    assert np.isnan(got.values[..., ~inside(cube, BOX)[rows, cols]]).all()
    # "polygons" is the parameter's name before openEO processes 2.0.0-rc.1.
    const = apply_polygon(cube, {"c": node("constant", result=True, x=7)}, polygons=lonlat(TRIANGLE))
    flags = inside(cube, TRIANGLE)
    assert (const.values[..., flags] == 7).all() and np.isnan(const.values[..., ~flags]).all()


def test_a_multipolygon_reaching_past_the_edge_is_one_part_clipped_to_the_cube() -> None:
    cube = make_cube()
    wide = shapely.geometry.box(X0 + 71, Y0 - 88, X0 + 150, Y0 - 32)  # the cube ends at X0 + 120
    multi = shapely.geometry.MultiPolygon([TRIANGLE, wide])
    evaluator, seen = recording()
    out = apply_polygon(cube, RECORD, evaluator, geometries=p("vector"),
                        params={"vector": VectorCube([multi], crs=EPSG)})
    (got, _), = seen
    flags = inside(cube, multi)
    rows, cols = box_of(flags)
    assert (rows, cols) == (slice(0, 9), slice(0, 12))
    assert got.sizes["y"] == 9 and got.sizes["x"] == 12
    assert np.isnan(got.values[..., ~flags[rows, cols]]).all()
    expected = np.where(flags, cube.values, np.nan)
    np.testing.assert_array_equal(out.values, expected)


@pytest.mark.parametrize(
    ("arguments", "process", "code", "words"),
    [
        ({"geometries": lonlat(TRIANGLE, TRIANGLE.buffer(5))}, RECORD, "GeometriesOverlap", "0 and 1"),
        ({"geometries": {"type": "Point", "coordinates": [3.0, 51.0]}}, RECORD, "ProcessParameterInvalid",
         "not Point"),
        ({"geometries": {"type": "FeatureCollection", "features": []}}, RECORD, "ProcessParameterInvalid",
         "at least one"),
        ({"geometries": lonlat(BOX), "mask_value": "x"}, RECORD, "ProcessParameterInvalid", "mask_value"),
        ({}, RECORD, "ProcessParameterRequired", "geometries"),
        ({"geometries": lonlat(BOX)},
         {"r": node("reduce_dimension", result=True, data=p("data"), dimension="bands",
                    reducer={"process_graph": {"m": node("max", result=True, data=p("data"))}})},
         "ProcessParameterInvalid", "must return a cube of the dimensions"),
    ],
)
def test_overlaps_bad_geometries_arguments_and_results_are_refused(
    arguments: dict[str, Any], process: dict[str, Any], code: str, words: str
) -> None:
    evaluator, seen = recording()
    with pytest.raises(ProcessGraphError) as error:
        apply_polygon(make_cube(), process, evaluator, **arguments)
    assert error.value.code == code and error.value.node_id == "a"
    assert words in error.value.reason
    assert not seen  # refused before any polygon's process ran


def test_a_cube_without_space_is_refused() -> None:
    cube = make_cube().isel(x=0, drop=True)
    with pytest.raises(ProcessGraphError) as error:
        apply_polygon(cube, RECORD, recording()[0], geometries=lonlat(BOX))
    assert error.value.code == "ProcessParameterInvalid" and "x, y and a CRS" in error.value.reason
