"""The processes the APEx catalogue's UDPs needed, against hand-computed values on small arrays.

``quantiles``, ``text_concat``, ``array_interpolate_linear``, ``pi``, ``e``, ``mask_polygon``,
``resample_cube_spatial``, ``to_scl_dilation_mask`` and ``load_collection`` with its spatial
extent left to the graph (and CDSE's ``featureflags``), each through the real evaluator. The
expected values are worked out in the comments (or are the examples of the openEO process
specifications), not recomputed with the engine's helpers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from openeo_upscale.backend.engine import ARRAY_DIM, Evaluator, ProcessGraphError
from openeo_upscale.backend.engine.cubes_scl import gaussian_kernel
from tests.backend.engine.helpers import node, p, run

EPSG = 32631
X0, Y0 = 600_000.0, 5_700_000.0
"""Upper-left corner of the test grids (UTM 31N, near Antwerp)."""


def evaluate(graph: dict[str, Any], services: dict[str, Any] | None = None, **params: Any) -> Any:
    return Evaluator(services=services or {}).evaluate(graph, params)


def grid_cube(values: Any, res: float = 10.0, bands: list[str] | None = None,
              times: list[str] | None = None) -> xr.DataArray:
    """A cube (t?, bands?, y, x) on a UTM grid whose upper-left corner is (X0, Y0)."""
    values = np.asarray(values, dtype=np.float64)
    dims: list[str] = []
    coords: dict[str, Any] = {}
    if times is not None:
        dims.append("t")
        coords["t"] = pd.to_datetime(times).values
    if bands is not None:
        dims.append("bands")
        coords["bands"] = bands
    ny, nx = values.shape[-2:]
    dims += ["y", "x"]
    coords["y"] = Y0 - (np.arange(ny) + 0.5) * res
    coords["x"] = X0 + (np.arange(nx) + 0.5) * res
    return xr.DataArray(values, dims=dims, coords=coords, attrs={"crs": EPSG, "resolution": res, "nodata": 0})


# -- quantiles ---------------------------------------------------------------------------------------


SPEC_DATA = [2, 4, 4, 4, 5, 5, 7, 9]


def test_quantiles_follow_the_specification_examples() -> None:
    # Type 7: h = (n - 1) p; 0.005 -> h = 0.035 -> 2 + 0.035 * (4 - 2) = 2.07, and so on.
    got = run("quantiles", data=SPEC_DATA, probabilities=[0.005, 0.01, 0.02, 0.05, 0.1, 0.5])
    assert got == pytest.approx([2.07, 2.14, 2.28, 2.7, 3.4, 4.5])
    # Four equal intervals: p = 0.25, 0.5, 0.75 -> h = 1.75, 3.5, 5.25 -> 4, 4.5, 5 + 0.25 * 2.
    assert run("quantiles", data=SPEC_DATA, probabilities=4) == pytest.approx([4, 4.5, 5.5])
    assert run("quantiles", data=SPEC_DATA, q=4) == pytest.approx([4, 4.5, 5.5])
    # Nodata ignored: [-1, -0.5, 1] -> median -0.5; not ignored: null.
    assert run("quantiles", data=[-1, -0.5, None, 1], q=2) == pytest.approx([-0.5])
    assert run("quantiles", data=[-1, -0.5, None, 1], q=2, ignore_nodata=False) == [None]
    assert run("quantiles", data=[], probabilities=[0.1, 0.5]) == [None, None]


@pytest.mark.parametrize("arguments, message", [
    ({"probabilities": [0.5, 0.1]}, "ascending"),
    ({"probabilities": [0.5], "q": 2}, "only one"),
    ({}, "give 'probabilities'"),
    ({"probabilities": [1.5]}, "between 0 and 1"),
])
def test_quantiles_refuse_bad_probabilities(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ProcessGraphError, match=message):
        run("quantiles", data=SPEC_DATA, **arguments)


def test_quantiles_as_a_temporal_reducer_and_along_a_dimension() -> None:
    """As the catalogue uses them: one quantile picked with array_element in reduce_dimension
    (timeseries_statistics), three quantiles turned into bands with apply_dimension (sentinel1_stats)."""
    series = [[[1.0, 9.0]], [[2.0, np.nan]], [[3.0, 7.0]], [[10.0, 8.0]], [[5.0, np.nan]]]  # (t, y, x)
    cube = grid_cube(series, times=[f"2023-06-{d:02d}" for d in (1, 6, 11, 16, 21)])
    q10 = {"process_graph": {
        "q": node("quantiles", data=p("data"), probabilities=[0.1]),
        "e": node("array_element", data={"from_node": "q"}, index=0, result=True),
    }}
    out = evaluate({"r": node("reduce_dimension", data=p("cube"), dimension="t", reducer=q10, result=True)},
                   cube=cube)
    # Pixel 0: sorted 1 2 3 5 10, h = 0.4 -> 1.4. Pixel 1: sorted 7 8 9, h = 0.2 -> 7.2.
    np.testing.assert_allclose(out.values, [[1.4, 7.2]])
    three = {"process_graph": {"q": node("quantiles", data=p("data"), probabilities=[0.1, 0.5, 0.9],
                                         result=True)}}
    out = evaluate({"a": node("apply_dimension", data=p("cube"), dimension="t", target_dimension="bands",
                              process=three, result=True)}, cube=cube)
    # Pixel 0: h = 0.4, 2, 3.6 -> 1.4, 3, 5 + 0.6 * 5 = 8. Pixel 1: h = 0.2, 1, 1.8 -> 7.2, 8, 8.8.
    np.testing.assert_allclose(out.transpose("bands", "y", "x").values, [[[1.4, 7.2]], [[3, 8]], [[8, 8.8]]])


# -- text_concat -------------------------------------------------------------------------------------


def test_text_concat_follows_the_specification_examples() -> None:
    assert run("text_concat", data=["Hello", "World"], separator=" ") == "Hello World"
    assert run("text_concat", data=[1, 2, 3, 4, 5, 6, 7, 8, 9, 0]) == "1234567890"
    assert run("text_concat", data=[None, True, False, 1, -1.5, "ß"], separator="\n") == \
        "null\ntrue\nfalse\n1\n-1.5\nß"
    assert run("text_concat", data=[2.0, "x"], separator=1) == "21x"  # JSON's 2.0 is the number 2


def test_text_concat_names_bands_as_timeseries_statistics_does() -> None:
    suffix = {"process_graph": {"c": node("text_concat", data=[p("x"), "_q10"], separator="", result=True)}}
    graph = {"a": node("array_apply", data=["B04", "B08"], process=suffix, result=True)}
    assert evaluate(graph) == ["B04_q10", "B08_q10"]


# -- array_interpolate_linear ------------------------------------------------------------------------


def test_array_interpolate_linear_follows_the_specification_examples() -> None:
    # Between 1 (index 1) and 6 (index 3): 3.5; between 6 and -8 (index 5): -1. The ends stay.
    assert run("array_interpolate_linear", data=[None, 1, None, 6, None, -8]) == [None, 1, 3.5, 6, -1, -8]
    assert run("array_interpolate_linear", data=[None, 1, None, None]) == [None, 1, None, None]


def test_array_interpolate_linear_weights_a_temporal_gap_by_time() -> None:
    """Along t (apply_dimension, as eurac_pv_farm_detection fills its weekly series)."""
    cube = grid_cube([[[0.0, np.nan]], [[np.nan, 4.0]], [[8.0, np.nan]], [[np.nan, 10.0]]],
                     times=["2023-01-01", "2023-01-02", "2023-01-05", "2023-01-06"])
    fill = {"process_graph": {"i": node("array_interpolate_linear", data=p("data"), result=True)}}
    out = evaluate({"a": node("apply_dimension", data=p("cube"), dimension="t", process=fill, result=True)},
                   cube=cube)
    # Pixel 0: 2 January is a quarter of the way from 1 (0) to 5 January (8): 2; 6 January trails.
    # Pixel 1: 5 January is 3/4 of the way from 2 (4) to 6 January (10): 8.5; 1 January leads.
    np.testing.assert_allclose(out.values[:, 0], [[0, np.nan], [2, 4], [8, 8.5], [np.nan, 10]])


def test_pi_and_e() -> None:
    assert run("pi") == pytest.approx(3.141592653589793, abs=0)
    assert run("e") == pytest.approx(2.718281828459045, abs=0)
    assert math.isclose(run("e"), math.exp(1))


# -- mask_polygon ------------------------------------------------------------------------------------


def _utm_box(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    return {"type": "Polygon", "crs": {"type": "name", "properties": {"name": f"EPSG:{EPSG}"}},
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]}


def test_mask_polygon_replaces_pixels_by_their_centres() -> None:
    values = np.arange(16, dtype=np.float64).reshape(4, 4)
    values[3, 3] = np.nan
    cube = grid_cube(values[None], bands=["B04"])
    # Holds the centres of the 2 x 2 upper-left pixels (x0 + 5, x0 + 15; y0 - 5, y0 - 15) only.
    box = _utm_box(X0 + 1, Y0 - 19, X0 + 19, Y0 - 1)
    kept = np.full((4, 4), np.nan)
    kept[:2, :2] = values[:2, :2]
    out = evaluate({"m": node("mask_polygon", data=p("c"), mask=box, result=True)}, c=cube)
    np.testing.assert_array_equal(out.values[0], kept)
    out = evaluate({"m": node("mask_polygon", data=p("c"), mask=box, inside=True, replacement=-1,
                              result=True)}, c=cube)
    expected = values.copy()
    expected[:2, :2] = -1
    np.testing.assert_array_equal(out.values[0], expected)  # the nodata pixel stays nodata
    assert out.dims == cube.dims and out.attrs["crs"] == EPSG


def test_mask_polygon_refuses_a_mask_without_polygons() -> None:
    point = {"type": "Point", "coordinates": [4.4, 51.2]}
    with pytest.raises(ProcessGraphError, match="no polygons"):
        evaluate({"m": node("mask_polygon", data=p("c"), mask=point, result=True)},
                 c=grid_cube(np.ones((2, 2))))


# -- resample_cube_spatial ---------------------------------------------------------------------------


def test_resample_cube_spatial_puts_data_on_the_target_grid() -> None:
    coarse = grid_cube([[[[1, 2], [3, 4]]]], res=20.0, bands=["SCL"], times=["2023-06-01"])
    # The target: 10 m, one row more than the data reaches, other bands and dates (not used).
    target = grid_cube(np.zeros((2, 2, 5, 4)), res=10.0, bands=["B02", "B03"],
                       times=["2023-01-01", "2023-02-01"])
    out = evaluate({"r": node("resample_cube_spatial", data=p("d"), target=p("t"), result=True)}, d=coarse,
                   t=target)
    assert list(out["bands"].values) == ["SCL"] and out.sizes["t"] == 1
    np.testing.assert_array_equal(out["x"].values, target["x"].values)
    np.testing.assert_array_equal(out["y"].values, target["y"].values)
    # Each 10 m pixel takes the 20 m pixel holding its centre; the fifth row is outside the data.
    expected = [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4], [np.nan] * 4]
    np.testing.assert_array_equal(out.values[0, 0], expected)
    assert out.attrs["resolution"] == 10.0


def test_resample_cube_spatial_averages_onto_a_coarser_grid() -> None:
    fine = grid_cube([[1, 3, 10, 20], [5, 7, 30, 40]], res=10.0)
    target = grid_cube(np.zeros((1, 2)), res=20.0)
    out = evaluate({"r": node("resample_cube_spatial", data=p("d"), target=p("t"), method="average",
                              result=True)}, d=fine, t=target)
    np.testing.assert_allclose(out.values, [[(1 + 3 + 5 + 7) / 4, (10 + 20 + 30 + 40) / 4]])


# -- to_scl_dilation_mask ----------------------------------------------------------------------------


VEGETATION, CLOUD_HIGH, NODATA = 4, 9, 0


def scl(values: Any) -> xr.DataArray:
    return grid_cube(np.asarray(values)[None, None], bands=["SCL"], times=["2023-06-01"], res=20.0)


def dilation_mask(values: Any, **arguments: Any) -> np.ndarray:
    graph = {"m": node("to_scl_dilation_mask", data=p("scl"), **arguments, result=True)}
    out = evaluate(graph, scl=scl(values))
    assert out.dims == ("t", "bands", "y", "x") and list(out["bands"].values) == ["SCL"]
    assert out.dtype == np.uint8
    return np.asarray(out.values[0, 0])


def one_cloud(size: int = 9) -> np.ndarray:
    field = np.full((size, size), VEGETATION)
    field[size // 2, size // 2] = CLOUD_HIGH
    return field


def square(size: int, centre: int, radius: int) -> np.ndarray:
    out = np.zeros((size, size), dtype=np.uint8)
    out[centre - radius:centre + radius + 1, centre - radius:centre + radius + 1] = 1
    return out


def plus(size: int, centre: int) -> np.ndarray:
    out = np.zeros((size, size), dtype=np.uint8)
    out[centre - 1:centre + 2, centre] = out[centre, centre - 1:centre + 2] = 1
    return out


def test_the_gaussian_kernels_are_cdses() -> None:
    """Values of the 17 x 17 kernel that openeo-python-driver's ``mask_scl_dilation`` publishes."""
    kernel = gaussian_kernel(17)
    assert kernel[8, 8] == pytest.approx(0.019927617993936483, rel=1e-12)
    assert kernel[8, 7] == pytest.approx(0.0187243135922042, rel=1e-12)
    assert kernel[0, 0] == pytest.approx(6.872607261923617e-06, rel=1e-12)
    assert kernel.sum() == pytest.approx(1.0)


def test_without_kernels_the_mask_is_the_class_lists() -> None:
    classes = [[4, 5, 6], [8, 0, 4], [11, 3, 7]]
    # Not in mask1 (2, 4, 5, 6, 7): 8, 0, 11, 3; in mask2 (3, 8, 9, 10, 11): 8, 11, 3.
    got = dilation_mask(classes, kernel1_size=0, kernel2_size=0)
    np.testing.assert_array_equal(got, [[0, 0, 0], [1, 1, 0], [1, 1, 0]])


def test_the_first_dilation_keeps_weights_above_0_057() -> None:
    # A normalised 5 x 5 Gaussian (sigma 5/6) weighs 0.2299 at the centre, 0.1119 one pixel away,
    # 0.0545 diagonally: above 0.057 only the centre and its four neighbours (a plus sign).
    got = dilation_mask(one_cloud(), kernel1_size=5, mask2_values=[])
    np.testing.assert_array_equal(got, plus(9, 4))


def test_the_second_dilation_keeps_weights_above_0_025() -> None:
    # The same weights above 0.025 include the diagonals (0.0545) but not two pixels away (0.0129):
    # a 3 x 3 square. Cloud counts as clear for the first step here.
    got = dilation_mask(one_cloud(), kernel2_size=5, mask1_values=[4, CLOUD_HIGH])
    np.testing.assert_array_equal(got, square(9, 4, 1))


def test_erosion_removes_small_clouds_before_dilating() -> None:
    # A lone cloud pixel has clear neighbours in the plus-shaped 3 x 3 disc: eroded away.
    assert not dilation_mask(one_cloud(), erosion_kernel_size=3, kernel1_size=5, mask2_values=[]).any()
    # Of a 3 x 3 cloud only the centre has all four neighbours cloudy; dilated, it is a plus sign.
    block = np.full((9, 9), VEGETATION)
    block[3:6, 3:6] = CLOUD_HIGH
    got = dilation_mask(block, erosion_kernel_size=3, kernel1_size=5, mask2_values=[])
    np.testing.assert_array_equal(got, plus(9, 4))


def test_with_cdses_defaults_small_clouds_pass_and_large_ones_spread() -> None:
    # Defaults 17 and 201: one cloud pixel weighs 0.0199 (< 0.057) and 0.00014 (< 0.025): not masked.
    assert not dilation_mask(one_cloud(31)).any()
    # A cloud covering the whole scene masks all of it, and so does nodata (class 0 is not clear).
    assert dilation_mask(np.full((31, 31), CLOUD_HIGH)).all()
    assert dilation_mask(np.full((31, 31), NODATA)).all()
    assert not dilation_mask(np.full((31, 31), VEGETATION)).any()


def test_the_mask_is_per_date_and_feeds_mask() -> None:
    """As the catalogue uses it: mask a cube with the SCL dilation mask of the same dates."""
    clear, cloudy = np.full((3, 3), VEGETATION), np.full((3, 3), CLOUD_HIGH)
    times = ["2023-06-01", "2023-06-06"]
    classes = grid_cube(np.stack([clear, cloudy])[:, None], bands=["SCL"], times=times, res=20.0)
    data = grid_cube(np.full((2, 1, 3, 3), 500.0), bands=["B04"], times=times, res=20.0)
    graph = {
        "m": node("to_scl_dilation_mask", data=p("scl"), kernel1_size=3, kernel2_size=3),
        "x": node("mask", data=p("data"), mask={"from_node": "m"}, result=True),
    }
    out = evaluate(graph, scl=classes, data=data)
    assert (out.values[0] == 500).all() and np.isnan(out.values[1]).all()


def test_scl_band_name_picks_the_band_and_even_kernels_are_refused() -> None:
    both = grid_cube(np.stack([np.full((3, 3), 100.0), np.full((3, 3), CLOUD_HIGH)])[None],
                     bands=["B04", "SCL"], times=["2023-06-01"])
    graph = {"m": node("to_scl_dilation_mask", data=p("c"), scl_band_name="SCL", kernel1_size=0,
                       kernel2_size=0, result=True)}
    out = evaluate(graph, c=both)
    assert list(out["bands"].values) == ["SCL"] and out.values.all()
    with pytest.raises(ProcessGraphError, match="odd"):
        evaluate({"m": node("to_scl_dilation_mask", data=p("c"), kernel1_size=4, result=True)},
                 c=scl(one_cloud()))
    with pytest.raises(ProcessGraphError, match="only the SCL band"):
        evaluate({"m": node("to_scl_dilation_mask", data=p("c"), result=True)},
                 c=both.assign_coords(bands=["B04", "B08"]))


# -- load_collection ---------------------------------------------------------------------------------


def test_load_collection_without_spatial_extent_takes_the_graphs_filter() -> None:
    box = {"west": 4.40, "south": 51.15, "east": 4.403, "north": 51.152}
    polygon = {"type": "Polygon", "coordinates": [[[4.40, 51.15], [4.403, 51.15], [4.403, 51.152],
                                                   [4.40, 51.152], [4.40, 51.15]]]}
    period = ["2023-06-01", "2023-06-12"]
    left_out = {
        "l": node("load_collection", id="SENTINEL2_L2A", temporal_extent=period, bands=["B04"],
                  featureflags={"tilesize": 128}),
        "f": node("filter_spatial", data={"from_node": "l"}, geometries=polygon, result=True),
    }
    given = {
        "l": node("load_collection", id="SENTINEL2_L2A", spatial_extent=box, temporal_extent=period,
                  bands=["B04"]),
        "f": node("filter_spatial", data={"from_node": "l"}, geometries=polygon, result=True),
    }
    got, expected = evaluate(left_out), evaluate(given)
    assert got.sizes["x"] > 0 and got.sizes["t"] > 0
    xr.testing.assert_identical(got, expected)


def test_reducers_see_the_array_dimension() -> None:
    """The callbacks above hand over ``ARRAY_DIM``; quantiles keep it (one entry per probability)."""
    arr = xr.DataArray(np.array([[1.0, 2.0, 3.0]]), dims=("y", ARRAY_DIM))
    out = run("quantiles", data=arr, probabilities=[0.5, 1.0])
    assert out.dims == ("y", ARRAY_DIM)
    np.testing.assert_array_equal(out.values, [[2.0, 3.0]])
