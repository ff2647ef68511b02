"""Data cube processes against independent numpy references, on small synthetic cubes.

Every graph runs through the real evaluator, so callbacks are evaluated as in a job: many
times (per period, per chunk, per geometry) and with openEO's parameter scoping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely.geometry
import xarray as xr
from pyproj import Transformer

from openeo_upscale.backend.engine import Evaluator, ProcessGraphError
from openeo_upscale.backend.engine.cubes import period_starts
from openeo_upscale.backend.engine.cubes_spatial import VectorCube
from openeo_upscale.backend.engine.output import ResultWriter
from tests.backend.engine.helpers import EPSG, X0, Y0, make_cube, node, p


def n(name: str) -> dict[str, str]:
    return {"from_node": name}


def cb(**nodes: dict[str, Any]) -> dict[str, Any]:
    return {"process_graph": nodes}


def run(graph: dict[str, Any], services: dict[str, Any] | None = None, **params: Any) -> Any:
    return Evaluator(services=services or {}).evaluate(graph, params)


def one(process_id: str, services: dict[str, Any] | None = None, params: Any = None, **arguments: Any) -> Any:
    return run({"n1": node(process_id, result=True, **arguments)}, services, **(params or {}))


# -- reduce_dimension, apply, apply_dimension --------------------------------------------------------


def test_reduce_bands_by_label_and_time_by_max_matches_numpy() -> None:
    cube = make_cube()
    ndvi_reducer = cb(
        nir=node("array_element", data=p("data"), label="B08"),
        red=node("array_element", data=p("data"), label="B04"),
        d=node("subtract", x=n("nir"), y=n("red")),
        s=node("add", x=n("nir"), y=n("red")),
        q=node("divide", x=n("d"), y=n("s"), result=True),
    )
    graph = {
        "r1": node("reduce_dimension", data=p("cube"), dimension="bands", reducer=ndvi_reducer),
        "r2": node(
            "reduce_dimension",
            data=n("r1"),
            dimension="t",
            reducer=cb(m=node("max", data=p("data"), result=True)),
        ),
    }
    graph["r2"]["result"] = True
    out = run(graph, cube=cube)
    v = cube.values
    expected = ((v[:, 1] - v[:, 0]) / (v[:, 1] + v[:, 0])).max(axis=0)
    assert out.dims == ("y", "x")
    np.testing.assert_allclose(out.values, expected)
    assert out.attrs["crs"] == EPSG


def test_apply_with_context_and_scalar_result() -> None:
    cube = make_cube(nt=2)
    out = one(
        "apply",
        data=p("cube"),
        process=cb(m=node("multiply", x=p("x"), y=p("context"), result=True)),
        context=3,
        params={"cube": cube},
    )
    np.testing.assert_array_equal(out.values, cube.values * 3)
    const = one(
        "apply", data=p("cube"), process=cb(c=node("constant", x=7, result=True)), params={"cube": cube}
    )
    assert const.shape == cube.shape and (const.values == 7).all()


def test_apply_dimension_array_apply_flags_non_maximum_per_pixel() -> None:
    cube = make_cube(bands=("ndvi",))
    process = cb(
        a=node(
            "array_apply",
            data=p("data"),
            process=cb(m=node("max", data=p("data")), ne=node("neq", x=p("x"), y=n("m"), result=True)),
            result=True,
        )
    )
    out = one("apply_dimension", data=p("cube"), dimension="t", process=process, params={"cube": cube})
    expected = cube.values != cube.values.max(axis=0, keepdims=True)
    assert out.dims == cube.dims
    np.testing.assert_array_equal(out.values.astype(bool), expected)
    np.testing.assert_array_equal(out["t"].values, cube["t"].values)


def test_apply_dimension_into_bands_with_several_labels_gives_bands_times_values() -> None:
    """sentinel1_stats: statistics over t into the existing bands (VH, VV), as Copernicus Data
    Space does: each band's values in turn, labelled <band>_<index>."""
    cube = make_cube(nt=5, bands=("VH", "VV"))
    process = cb(mn=node("min", data=p("data")), mx=node("max", data=p("data")),
                 a=node("array_create", data=[n("mn"), n("mx")], result=True))
    out = one("apply_dimension", data=p("cube"), dimension="t", target_dimension="bands", process=process,
              params={"cube": cube})
    assert out.dims == ("bands", "y", "x")
    assert list(out["bands"].values) == ["VH_0", "VH_1", "VV_0", "VV_1"]
    v = cube.values
    expected = np.stack([v[:, 0].min(0), v[:, 0].max(0), v[:, 1].min(0), v[:, 1].max(0)])
    np.testing.assert_array_equal(out.values, expected)


def test_reducer_keeping_the_dimension_is_an_error() -> None:
    cube = make_cube(nt=2)
    with pytest.raises(ProcessGraphError, match="reduce"):
        one(
            "reduce_dimension",
            data=p("cube"),
            dimension="t",
            reducer=cb(a=node("absolute", x=p("data"), result=True)),
            params={"cube": cube},
        )


# -- aggregate_temporal_period ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "day", "start"),
    [
        ("day", "2023-05-17T13:00", "2023-05-17"),
        ("week", "2023-05-17", "2023-05-15"),
        ("dekad", "2023-05-17", "2023-05-11"),
        ("dekad", "2023-05-31", "2023-05-21"),
        ("month", "2023-05-17", "2023-05-01"),
        ("season", "2023-02-17", "2022-12-01"),
        ("season", "2023-12-17", "2023-12-01"),
        ("season", "2023-05-17", "2023-03-01"),
        ("tropical-season", "2023-03-17", "2022-11-01"),
        ("tropical-season", "2023-07-17", "2023-05-01"),
        ("year", "2023-05-17", "2023-01-01"),
        ("decade", "2023-05-17", "2020-01-01"),
        ("decade-ad", "2020-05-17", "2011-01-01"),
    ],
)
def test_period_starts(period: str, day: str, start: str) -> None:
    out = period_starts(np.array([np.datetime64(day, "ns")]), period)
    assert out[0] == np.datetime64(start, "ns")


def test_aggregate_temporal_period_labels_periods_by_start_and_calls_reducer_per_period() -> None:
    cube = make_cube(nt=14)  # 2023-04-20 .. 2023-06-24, every 5 days
    out = one(
        "aggregate_temporal_period",
        data=p("cube"),
        period="month",
        reducer=cb(m=node("mean", data=p("data"), result=True)),
        params={"cube": cube},
    )
    months = pd.DatetimeIndex(cube["t"].values).to_period("M")
    labels = sorted(set(months))
    assert list(out["t"].values) == [np.datetime64(m.start_time, "ns") for m in labels]
    for i, m in enumerate(labels):
        np.testing.assert_allclose(out.values[i], cube.values[months == m].mean(axis=0))


def test_aggregate_temporal_period_first_skips_nodata() -> None:
    cube = make_cube(nt=4, start="2023-05-01")
    cube.values[0, :, 0, 0] = np.nan
    out = one(
        "aggregate_temporal_period",
        data=p("cube"),
        period="month",
        reducer=cb(f=node("first", data=p("data"), result=True)),
        params={"cube": cube},
    )
    assert out.sizes["t"] == 1
    np.testing.assert_array_equal(out.values[0, :, 0, 0], cube.values[1, :, 0, 0])
    np.testing.assert_array_equal(out.values[0, :, 1:, :], cube.values[0, :, 1:, :])


# -- apply_neighborhood -----------------------------------------------------------------------------


def test_apply_neighborhood_per_month_time_series() -> None:
    cube = make_cube(nt=14, bands=("score",))
    process = cb(
        a=node(
            "array_apply",
            data=p("data"),
            process=cb(m=node("max", data=p("data")), d=node("subtract", x=p("x"), y=n("m"), result=True)),
            result=True,
        )
    )
    size = [
        {"dimension": "x", "unit": "px", "value": 1},
        {"dimension": "y", "unit": "px", "value": 1},
        {"dimension": "t", "value": "month"},
    ]
    out = one(
        "apply_neighborhood", data=p("cube"), process=process, size=size, overlap=[], params={"cube": cube}
    )
    months = pd.DatetimeIndex(cube["t"].values).to_period("M")
    expected = cube.values.copy()
    for m in set(months):
        sel = months == m
        expected[sel] = cube.values[sel] - cube.values[sel].max(axis=0, keepdims=True)
    np.testing.assert_allclose(out.values, expected)
    np.testing.assert_array_equal(out["t"].values, cube["t"].values)


def test_apply_neighborhood_spatial_chunks_with_overlap_tile_back() -> None:
    cube = make_cube(nt=2, ny=7, nx=9)
    size = [{"dimension": "x", "unit": "px", "value": 4}, {"dimension": "y", "unit": "px", "value": 4}]
    overlap = [{"dimension": "x", "unit": "px", "value": 2}, {"dimension": "y", "unit": "px", "value": 2}]
    process = cb(m=node("multiply", x=p("data"), y=2, result=True))
    out = one(
        "apply_neighborhood",
        data=p("cube"),
        process=process,
        size=size,
        overlap=overlap,
        params={"cube": cube},
    )
    np.testing.assert_array_equal(out.values, cube.values * 2)
    np.testing.assert_array_equal(out["x"].values, cube["x"].values)


# -- apply_kernel ------------------------------------------------------------------------------------


def reference_convolution(image: np.ndarray, kernel: np.ndarray, mode: str = "constant") -> np.ndarray:
    kh, kw = kernel.shape
    padded = np.pad(image, ((kh // 2, kh // 2), (kw // 2, kw // 2)), mode=mode)  # type: ignore[call-overload]
    out = np.zeros_like(image)
    flipped = kernel[::-1, ::-1]
    for r in range(image.shape[0]):
        for c in range(image.shape[1]):
            out[r, c] = (padded[r : r + kh, c : c + kw] * flipped).sum()
    return out


@pytest.mark.parametrize(
    ("size", "border", "mode"), [(3, 0, "constant"), (15, 0, "constant"), (5, "replicate", "edge")]
)
def test_apply_kernel_matches_direct_convolution(size: int, border: Any, mode: str) -> None:
    cube = make_cube(nt=2, bands=("a",), ny=20, nx=24)
    cube.values[0, 0, 3, 4] = np.nan
    kernel = np.random.default_rng(1).random((size, size))
    out = one(
        "apply_kernel",
        data=p("cube"),
        kernel=kernel.tolist(),
        factor=0.5,
        border=border,
        replace_invalid=0,
        params={"cube": cube},
    )
    for t in range(2):
        image = np.nan_to_num(cube.values[t, 0], nan=0.0)
        np.testing.assert_allclose(
            out.values[t, 0], 0.5 * reference_convolution(image, kernel, mode), rtol=1e-9, atol=1e-6
        )


def test_apply_kernel_rejects_even_kernels() -> None:
    with pytest.raises(ProcessGraphError, match="odd"):
        one("apply_kernel", data=p("cube"), kernel=[[1, 1], [1, 1]], params={"cube": make_cube(nt=1)})


# -- mask --------------------------------------------------------------------------------------------


def test_mask_broadcasts_a_single_band_mask_over_all_bands() -> None:
    cube = make_cube(bands=("B02", "B03", "B04"))
    flags = xr.DataArray(
        cube.values[:, :1] > 5000,
        dims=cube.dims,
        coords={**{d: cube[d] for d in ("t", "y", "x")}, "bands": ["SCL"]},
        attrs=cube.attrs,
    )
    out = one("mask", data=p("cube"), mask=p("m"), params={"cube": cube, "m": flags})
    expected = np.where(np.broadcast_to(flags.values, cube.shape), np.nan, cube.values)
    np.testing.assert_array_equal(out.values, expected)
    replaced = one("mask", data=p("cube"), mask=p("m"), replacement=-1, params={"cube": cube, "m": flags})
    np.testing.assert_array_equal(replaced.values, np.where(np.isnan(expected), -1, cube.values))


def test_mask_without_bands_on_a_coarser_grid_is_resampled() -> None:
    data = make_cube(nt=2, bands=("B04", "B08"), ny=8, nx=10, res=10.0)
    coarse = make_cube(nt=2, bands=("SCL",), ny=4, nx=5, res=20.0, seed=5).isel(bands=0, drop=True)
    flags = coarse > 5000
    out = one("mask", data=p("d"), mask=p("m"), params={"d": data, "m": flags})
    upsampled = np.repeat(np.repeat(flags.values, 2, axis=1), 2, axis=2)
    expected = np.where(upsampled[:, None], np.nan, data.values)
    np.testing.assert_array_equal(out.values, expected)


def test_mask_masks_where_a_coarser_mask_does_not_reach() -> None:
    """A 20 m mask one pixel short of 10 m data at a tile edge: the uncovered pixels are masked
    (no mask value counts as nodata, and nodata in a mask masks), for boolean and float masks."""
    data = make_cube(nt=1, bands=("B04",), ny=4, nx=4, res=10.0)
    coarse = make_cube(nt=1, bands=("SCL",), ny=2, nx=1, res=20.0).isel(bands=0, drop=True)
    for flags in (coarse < 0, (coarse < 0).astype("float32")):  # nothing flagged where it reaches
        out = one("mask", data=p("d"), mask=p("m"), params={"d": data, "m": flags})
        assert not np.isnan(out.values[..., :2]).any(), "covered columns keep their values"
        assert np.isnan(out.values[..., 2:]).all(), "uncovered columns are masked"


def test_mask_with_matching_bands_masks_band_by_band() -> None:
    cube = make_cube(nt=1)
    flags = cube > 5000
    out = one("mask", data=p("cube"), mask=p("m"), params={"cube": cube, "m": flags})
    np.testing.assert_array_equal(out.values, np.where(flags.values, np.nan, cube.values))


# -- merge_cubes -----------------------------------------------------------------------------------------


def test_merge_cubes_without_overlap_concatenates_bands() -> None:
    a = make_cube(bands=("ndvi",))
    b = make_cube(bands=("SCL",), seed=3).transpose("bands", "t", "y", "x")
    out = one("merge_cubes", cube1=p("a"), cube2=p("b"), params={"a": a, "b": b})
    assert list(out["bands"].values) == ["ndvi", "SCL"]
    np.testing.assert_array_equal(out.sel(bands="ndvi").values, a.sel(bands="ndvi").values)
    np.testing.assert_array_equal(
        out.sel(bands="SCL").values, b.sel(bands="SCL").transpose("t", "y", "x").values
    )


def test_merge_cubes_resolves_overlap_with_the_resolver() -> None:
    a = make_cube(bands=("score",))
    b = make_cube(bands=("score",), seed=4).transpose("bands", "t", "y", "x")
    resolver = cb(s=node("add", x=p("x"), y=p("y"), result=True))
    out = one("merge_cubes", cube1=p("a"), cube2=p("b"), overlap_resolver=resolver, params={"a": a, "b": b})
    np.testing.assert_array_equal(out.values, a.values + b.transpose(*a.dims).values)
    with pytest.raises(ProcessGraphError, match="overlap_resolver"):
        one("merge_cubes", cube1=p("a"), cube2=p("b"), params={"a": a, "b": b})


def test_merge_cubes_partial_overlap_along_time() -> None:
    a = make_cube(nt=4)
    b = make_cube(nt=4, seed=2, start="2023-04-30")  # shares 2023-04-30 and 2023-05-05
    resolver = cb(m=node("max", data=[p("x"), p("y")], result=True))
    out = one("merge_cubes", cube1=p("a"), cube2=p("b"), overlap_resolver=resolver, params={"a": a, "b": b})
    assert out.sizes["t"] == 6
    shared = np.intersect1d(a["t"].values, b["t"].values)
    np.testing.assert_array_equal(
        out.sel(t=shared).values, np.maximum(a.sel(t=shared).values, b.sel(t=shared).values)
    )
    np.testing.assert_array_equal(out.sel(t=a["t"].values[0]).values, a.values[0])
    np.testing.assert_array_equal(out.sel(t=b["t"].values[-1]).values, b.values[-1])


# -- vector cubes ---------------------------------------------------------------------------------------


def to_lonlat(geometry: shapely.geometry.base.BaseGeometry) -> dict[str, Any]:
    transformer = Transformer.from_crs(EPSG, 4326, always_xy=True)
    projected = shapely.transform(geometry, lambda x, y: transformer.transform(x, y), interleaved=False)
    return shapely.geometry.mapping(projected)  # type: ignore[no-any-return]


def inside_centres(cube: xr.DataArray, polygon: shapely.geometry.Polygon) -> np.ndarray:
    xx, yy = np.meshgrid(cube["x"].values, cube["y"].values)
    return np.asarray(shapely.contains_xy(polygon, xx, yy))


def test_aggregate_spatial_and_vector_to_raster_on_a_tiny_grid() -> None:
    cube = make_cube(nt=3, bands=("score",), ny=10, nx=10)
    polys = [
        shapely.geometry.box(X0 + 12, Y0 - 58, X0 + 48, Y0 - 13),
        shapely.geometry.box(X0 + 61, Y0 - 92, X0 + 88, Y0 - 41),
    ]
    geojson = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": to_lonlat(g)} for g in polys],
    }
    graph = {
        "agg": node(
            "aggregate_spatial",
            data=p("cube"),
            geometries=p("geom"),
            reducer=cb(m=node("mean", data=p("data"), result=True)),
        ),
        "ras": node("vector_to_raster", data=n("agg"), target=p("cube"), result=True),
    }
    vector = run({"agg": {**graph["agg"], "result": True}}, cube=cube, geom=geojson)
    assert isinstance(vector, VectorCube)
    raster = run(graph, cube=cube, geom=geojson)
    expected = np.full(cube.shape, np.nan)
    for i, poly in enumerate(polys):
        inside = inside_centres(cube, poly)
        means = cube.values[:, :, inside].mean(axis=-1)
        np.testing.assert_allclose(vector.values.isel(geometry=i).transpose("t", "bands").values, means)
        expected[:, :, inside] = means[:, :, None]
    np.testing.assert_allclose(raster.transpose(*cube.dims).values, expected)


def test_filter_spatial_crops_and_masks_outside() -> None:
    cube = make_cube(nt=1, bands=("a",), ny=10, nx=10)
    triangle = shapely.geometry.Polygon([(X0 + 2, Y0 - 3), (X0 + 78, Y0 - 1), (X0 + 4, Y0 - 77)])
    out = one("filter_spatial", data=p("cube"), geometries=to_lonlat(triangle), params={"cube": cube})
    full = inside_centres(cube, triangle)
    rows, cols = np.nonzero(full.any(axis=1))[0], np.nonzero(full.any(axis=0))[0]
    assert list(out["y"].values) == list(cube["y"].values[rows[0] : rows[-1] + 1])
    assert list(out["x"].values) == list(cube["x"].values[cols[0] : cols[-1] + 1])
    np.testing.assert_array_equal(np.isnan(out.values[0, 0]), ~inside_centres(out, triangle))


# -- resample_spatial -------------------------------------------------------------------------------------


def test_resample_spatial_average_and_near() -> None:
    cube = make_cube(nt=2, ny=8, nx=10)
    coarse = one("resample_spatial", data=p("cube"), resolution=20, method="average", params={"cube": cube})
    blocks = cube.values.reshape(2, 2, 4, 2, 5, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(coarse.values, blocks)
    assert coarse.attrs["resolution"] == 20 and coarse["x"].values[0] == X0 + 10
    fine = one("resample_spatial", data=p("c"), resolution=10, method="near", params={"c": coarse})
    np.testing.assert_allclose(fine.values, np.repeat(np.repeat(blocks, 2, axis=2), 2, axis=3))
    same = one("resample_spatial", data=p("cube"), resolution=10, method="near", params={"cube": cube})
    assert same is cube


# -- filters, labels, dimensions, ndvi ------------------------------------------------------------------


def test_filters() -> None:
    cube = make_cube(nt=6)
    temporal = one(
        "filter_temporal", data=p("cube"), extent=["2023-04-25", "2023-05-05"], params={"cube": cube}
    )
    assert list(temporal["t"].values) == list(cube["t"].values[1:3])
    bands = one("filter_bands", data=p("cube"), bands=["nir"], params={"cube": cube})
    assert list(bands["bands"].values) == ["B08"]
    transformer = Transformer.from_crs(EPSG, 4326, always_xy=True)
    west, south = transformer.transform(X0 + 20, Y0 - 40)
    east, north = transformer.transform(X0 + 60, Y0 - 10)
    box = one(
        "filter_bbox",
        data=p("cube"),
        extent={"west": X0 + 20, "south": Y0 - 40, "east": X0 + 60, "north": Y0 - 10, "crs": EPSG},
        params={"cube": cube},
    )
    assert list(box["x"].values) == list(cube["x"].values[2:6]) and list(box["y"].values) == list(
        cube["y"].values[1:4]
    )
    assert west < east and south < north


def test_rename_add_drop_and_dimension_labels() -> None:
    cube = make_cube(nt=2)
    renamed = one(
        "rename_labels", data=p("cube"), dimension="bands", target=["red", "nir"], params={"cube": cube}
    )
    assert list(renamed["bands"].values) == ["red", "nir"]
    one_band = one(
        "rename_labels",
        data=p("cube"),
        dimension="bands",
        target=["nir"],
        source=["B08"],
        params={"cube": cube},
    )
    assert list(one_band["bands"].values) == ["B04", "nir"]
    reduced = cube.isel(bands=0, drop=True)
    added = one(
        "add_dimension", data=p("c"), name="bands2", label="ndvi", type="bands", params={"c": reduced}
    )
    assert added.dims == ("t", "bands", "y", "x") and list(added["bands"].values) == ["ndvi"]
    labels = one("dimension_labels", data=p("c"), dimension="bands2", params={"c": added})
    assert labels == ["ndvi"]
    assert one("dimension_labels", data=p("c"), dimension="t", params={"c": cube}) == [
        "2023-04-20T00:00:00Z",
        "2023-04-25T00:00:00Z",
    ]
    dropped = one("drop_dimension", data=p("c"), name="bands", params={"c": added})
    assert dropped.dims == ("t", "y", "x")
    with pytest.raises(ProcessGraphError, match="reduce it first"):
        one("drop_dimension", data=p("c"), name="bands", params={"c": cube})


def test_ndvi_by_common_names_and_target_band() -> None:
    cube = make_cube(nt=2)
    out = one("ndvi", data=p("cube"), params={"cube": cube})
    v = cube.values
    np.testing.assert_allclose(out.values, (v[:, 1] - v[:, 0]) / (v[:, 1] + v[:, 0]))
    appended = one("ndvi", data=p("cube"), nir="B08", red="B04", target_band="NDVI", params={"cube": cube})
    assert list(appended["bands"].values) == ["B04", "B08", "NDVI"]


def test_save_result_calls_the_writer() -> None:
    saved = []

    class Writer:
        def save(self, cube: Any, format: str, options: Any) -> list[str]:
            saved.append((cube, format, options))
            return ["openEO.tif"]

    cube = make_cube(nt=1)
    assert one("save_result", services={"results": Writer()}, data=p("c"), format="GTiff", params={"c": cube})
    assert saved[0][0] is cube and saved[0][1] == "GTiff"


def test_save_result_of_a_saved_result_sets_its_format(tmp_path: Path) -> None:
    """A UDP that saves its own result, saved again by the graph calling it (the client adds a
    save_result to every batch job): the outer format wins, as on Copernicus Data Space, and the
    inner files are gone."""
    writer = ResultWriter(tmp_path)
    graph = {
        "inner": node("save_result", data=p("c"), format="netCDF"),
        "outer": node("save_result", True, data={"from_node": "inner"}, format="GTiff"),
    }
    cube = make_cube(nt=1).isel(t=0, drop=True)
    cube.attrs.update(crs=32631)
    assert run(graph, {"results": writer}, c=cube)
    assert list(writer.assets) == ["openEO.tif"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["openEO.tif"]


# -- load_collection --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    date: date
    cloud_cover: float


class FakeProvider:
    """Scenes every 5 days with cloud cover 0, 30, 60, 90, ...; values from the pixel index."""

    BANDS = ("B04", "B08")

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def acquisitions(self, epsg: int, bounds: Any, start: str, end: str) -> list[Scene]:
        first, stop = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
        days = [first + timedelta(days=5 * i) for i in range(100) if first + timedelta(days=5 * i) < stop]
        return [Scene(d, float(30 * i % 120)) for i, d in enumerate(days)]

    def load(self, epsg: int, bounds: Any, dates: list[date], bands: list[str]) -> xr.DataArray:
        self.calls.append((epsg, bounds, dates, bands))
        w, s, e, nn = bounds
        xs = (np.arange(np.floor(w / 10), np.ceil(e / 10)) + 0.5) * 10
        ys = ((np.arange(np.floor(s / 10), np.ceil(nn / 10)) + 0.5) * 10)[::-1]
        values = np.ones((len(dates), len(bands), ys.size, xs.size), dtype=np.float32)
        return xr.DataArray(
            values,
            dims=("t", "bands", "y", "x"),
            coords={"t": [np.datetime64(d, "ns") for d in dates], "bands": bands, "y": ys, "x": xs},
            attrs={"crs": epsg, "resolution": 10.0, "nodata": 0},
        )


def test_load_collection_filters_scenes_and_counts_pixels() -> None:
    provider = FakeProvider()
    usage: dict[str, Any] = {}
    services = {"collections": {"S2": provider}, "usage": usage}
    lt = cb(c=node("lte", x=p("value"), y=p("max_cc"), result=True))
    cube = one(
        "load_collection",
        services=services,
        params={"max_cc": 50},
        id="S2",
        spatial_extent={"west": 4.40, "south": 51.20, "east": 4.41, "north": 51.21},
        temporal_extent=["2023-05-01", "2023-06-01"],
        bands=["B08"],
        properties={"eo:cloud_cover": lt},
    )
    epsg, bounds, dates, bands = provider.calls[0]
    assert epsg == 32631 and bands == ["B08"]
    # cloud cover 0, 30, 60, 90, 0, 30, 60: the scenes with at most 50 %
    assert dates == [date(2023, 5, 1), date(2023, 5, 6), date(2023, 5, 21), date(2023, 5, 26)]
    assert cube.sizes["t"] == 4 and cube.attrs["crs"] == 32631
    assert usage["input_pixels"] >= cube.size > 0
    xs, ys = cube["x"].values, cube["y"].values
    assert xs.min() >= bounds[0] and xs.max() < bounds[2] and ys.min() > bounds[1] and ys.max() <= bounds[3]


def test_load_collection_null_extent_uses_job_extent_or_the_graph() -> None:
    provider = FakeProvider()
    services: dict[str, Any] = {"collections": {"S2": provider}, "job_extent": (-70.0, -33.5, -69.99, -33.49)}
    cube = one(
        "load_collection",
        services=services,
        id="S2",
        spatial_extent=None,
        temporal_extent=["2023-05-01", "2023-05-06"],
        bands=["B04"],
    )
    assert cube.attrs["crs"] == 32719
    geometry = {
        "type": "Polygon",
        "coordinates": [[[4.40, 51.20], [4.41, 51.20], [4.41, 51.21], [4.40, 51.20]]],
    }
    graph = {
        "lc": node(
            "load_collection",
            id="S2",
            spatial_extent=None,
            temporal_extent=["2023-05-01", "2023-05-06"],
            bands=["B04"],
        ),
        "fs": node("filter_spatial", data=n("lc"), geometries=p("geometry"), result=True),
    }
    out = run(graph, {"collections": {"S2": FakeProvider()}}, geometry=geometry)
    assert out.attrs["crs"] == 32631
    assert np.isnan(out.values).any() and not np.isnan(out.values).all()


def test_apply_dimension_returning_one_value_leaves_one_label() -> None:
    """As the openEO spec has it when the number of values changes (an index computed from the
    bands): one band, labelled 0, not the value repeated for every input band."""
    cube = make_cube(nt=2, bands=("B04", "B08"))
    process = cb(d=node("subtract", x=n("b"), y=n("a"), result=True),
                 a=node("array_element", data=p("data"), index=0),
                 b=node("array_element", data=p("data"), index=1))
    out = one("apply_dimension", data=p("cube"), dimension="bands", process=process, params={"cube": cube})
    assert out.dims == cube.dims and list(out["bands"].values) == [0]
    np.testing.assert_array_equal(out.values[:, 0], cube.values[:, 1] - cube.values[:, 0])
