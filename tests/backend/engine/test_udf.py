"""``run_udf`` through the engine's evaluator: Python UDFs on the ``openeo`` client's UDF runtime,
top level and as the callback of the cube processes, against numpy references."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import pytest
import xarray as xr

from openeo_upscale.backend.engine import Evaluator, ProcessGraphError
from openeo_upscale.backend.engine.udf import PYTHON_VERSION, udf_problem
from tests.backend.engine.helpers import make_cube as cube_of
from tests.backend.engine.helpers import node, p

EPSG = 32631


def make_cube(nt: int = 4, bands: tuple[str, ...] = ("B04", "B08"), ny: int = 9, nx: int = 11,
              seed: int = 1) -> xr.DataArray:
    return cube_of(nt, bands, ny, nx, seed=seed, start="2023-05-01")


def udf_node(code: str, result: bool = False, data: Any = None, **arguments: Any) -> dict[str, Any]:
    """A run_udf node with Python `code` (dedented) reading `data` (the parameter ``data`` by default)."""
    return node("run_udf", result=result, data=data or p("data"), udf=textwrap.dedent(code),
                runtime="Python", **arguments)


def callback(code: str, **arguments: Any) -> dict[str, Any]:
    """A callback whose whole graph is one run_udf node on its ``data``."""
    return {"process_graph": {"udf": udf_node(code, result=True, **arguments)}}


def run(graph: dict[str, Any], cube: xr.DataArray) -> Any:
    return Evaluator().evaluate(graph, {"cube": cube})


SCALE_B08 = """
    import xarray

    def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
        factor = xarray.DataArray([1.0, context.get("factor", 2.0)], dims=["bands"],
                                  coords={"bands": ["B04", "B08"]})
        return cube * factor
"""


def test_top_level_run_udf_scaling_a_band_matches_numpy() -> None:
    cube = make_cube()
    out = run({"udf": udf_node(SCALE_B08, result=True, data=p("cube"))}, cube)
    assert out.dims == ("t", "bands", "y", "x")
    np.testing.assert_array_equal(out.sel(bands="B04").values, cube.sel(bands="B04").values)
    np.testing.assert_array_equal(out.sel(bands="B08").values, 2.0 * cube.sel(bands="B08").values)
    assert out.attrs["crs"] == EPSG and out.attrs["resolution"] == 10.0
    for dim in cube.dims:
        np.testing.assert_array_equal(out[dim].values, cube[dim].values)


def test_context_is_passed_to_the_udf_as_user_context() -> None:
    cube = make_cube()
    graph = {"udf": udf_node(SCALE_B08, result=True, data=p("cube"), context={"factor": 0.5})}
    out = run(graph, cube)
    np.testing.assert_array_equal(out.sel(bands="B08").values, 0.5 * cube.sel(bands="B08").values)


def test_a_udf_of_one_udfdata_parameter_and_the_old_xarraydatacube_signature() -> None:
    cube = make_cube()
    generic = """
        from openeo.udf import UdfData, XarrayDataCube

        def apply_udf_data(data: UdfData):
            (only,) = data.get_datacube_list()
            data.set_datacube_list([XarrayDataCube(only.get_array() + data.user_context["offset"])])
    """
    out = run({"udf": udf_node(generic, result=True, data=p("cube"), context={"offset": 7})}, cube)
    np.testing.assert_array_equal(out.values, cube.values + 7)
    legacy = """
        from openeo.udf import XarrayDataCube

        def apply_datacube(cube: XarrayDataCube, context: dict) -> XarrayDataCube:
            return XarrayDataCube(-cube.get_array())
    """
    out = run({"udf": udf_node(legacy, result=True, data=p("cube"))}, cube)
    np.testing.assert_array_equal(out.values, -cube.values)


def test_run_udf_as_the_process_of_apply_gets_the_cube() -> None:
    cube = make_cube()
    apply_cb = {"process_graph": {"udf": udf_node(SCALE_B08, result=True, data=p("x"))}}
    out = run({"a": node("apply", result=True, data=p("cube"), process=apply_cb)}, cube)
    np.testing.assert_array_equal(out.sel(bands="B08").values, 2.0 * cube.sel(bands="B08").values)


def test_reduce_dimension_over_t_gives_the_udf_the_cube_and_takes_it_back_without_t() -> None:
    cube = make_cube()
    code = """
        import xarray

        def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
            assert cube.dims == ("t", "bands", "y", "x"), cube.dims
            return cube.max(dim="t")
    """
    graph = {"r": node("reduce_dimension", result=True, data=p("cube"), dimension="t",
                       reducer=callback(code))}
    out = run(graph, cube)
    assert out.dims == ("bands", "y", "x")
    np.testing.assert_array_equal(out.values, np.nanmax(cube.values, axis=0))
    assert list(out["bands"].values) == ["B04", "B08"] and out.attrs["crs"] == EPSG


def test_reduce_dimension_over_bands_with_a_label_picked_by_sel() -> None:
    """As the catalogue's biopar does: ``cube.sel(bands=...)`` leaves a scalar ``bands`` coordinate."""
    cube = make_cube()
    code = """
        from openeo.udf import XarrayDataCube

        def apply_datacube(cube: XarrayDataCube, context: dict) -> XarrayDataCube:
            array = cube.get_array()
            nir, red = array.sel(bands="B08"), array.sel(bands="B04")
            return XarrayDataCube((nir - red) / (nir + red))
    """
    graph = {"r": node("reduce_dimension", result=True, data=p("cube"), dimension="bands",
                       reducer=callback(code))}
    out = run(graph, cube)
    assert out.dims == ("t", "y", "x") and "bands" not in out.coords
    red, nir = cube.values[:, 0], cube.values[:, 1]
    np.testing.assert_allclose(out.values, (nir - red) / (nir + red))


def test_apply_dimension_over_t_with_apply_datacube_and_apply_timeseries() -> None:
    cube = make_cube()
    datacube = """
        import xarray

        def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
            return cube.cumsum(dim="t")
    """
    graph = {"a": node("apply_dimension", result=True, data=p("cube"), dimension="t",
                       process=callback(datacube))}
    out = run(graph, cube)
    assert out.dims == cube.dims
    np.testing.assert_array_equal(out.values, np.cumsum(cube.values, axis=0))
    np.testing.assert_array_equal(out["t"].values, cube["t"].values)
    timeseries = """
        import pandas

        def apply_timeseries(series: pandas.Series, context: dict) -> pandas.Series:
            return series - series.mean()
    """
    graph["a"]["arguments"]["process"] = callback(timeseries)
    out = run(graph, cube)
    np.testing.assert_allclose(out.values, cube.values - cube.values.mean(axis=0, keepdims=True))


ROLLING_MEAN = """
    import xarray

    def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
        return cube.rolling(y=3, x=3, center=True, min_periods=1).mean()
"""
"""A 3 x 3 focal mean: with one pixel of overlap, chunks tile back to the whole cube's result."""


@pytest.mark.parametrize("size, overlap", [(4, 1), (100, 0)], ids=["chunks-with-overlap", "one-call"])
def test_apply_neighborhood_gives_the_udf_each_neighbourhood(size: int, overlap: int) -> None:
    cube = make_cube()
    graph = {"a": node("apply_neighborhood", result=True, data=p("cube"), process=callback(ROLLING_MEAN),
                       size=[{"dimension": "x", "value": size, "unit": "px"},
                             {"dimension": "y", "value": size, "unit": "px"}],
                       overlap=[{"dimension": "x", "value": overlap, "unit": "px"},
                                {"dimension": "y", "value": overlap, "unit": "px"}])}
    out = run(graph, cube)
    expected = cube.rolling(y=3, x=3, center=True, min_periods=1).mean()
    assert out.dims == cube.dims
    np.testing.assert_allclose(out.values, expected.values)
    np.testing.assert_array_equal(out["x"].values, cube["x"].values)


def test_apply_neighborhood_chunks_are_the_size_plus_the_overlap() -> None:
    cube = make_cube(nt=1, bands=("B04",))
    code = """
        import numpy, xarray

        def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
            return xarray.full_like(cube, cube.sizes["y"] * 100 + cube.sizes["x"])
    """
    size = [{"dimension": d, "value": 4, "unit": "px"} for d in ("x", "y")]
    overlap = [{"dimension": d, "value": 2, "unit": "px"} for d in ("x", "y")]
    graph = {"a": node("apply_neighborhood", result=True, data=p("cube"), process=callback(code),
                       size=size, overlap=overlap)}
    out = run(graph, cube)
    assert np.unique(out.values).tolist() == [808]  # 4 + 2 * 2 pixels along y and x


def test_an_exception_of_the_udf_names_it_and_its_line() -> None:
    code = """
        import xarray

        def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
            return cube / (1 // 0)
    """
    with pytest.raises(ProcessGraphError) as caught:
        run({"udf": udf_node(code, result=True, data=p("cube"))}, make_cube())
    assert caught.value.code == "UdfError"
    assert caught.value.message == (
        "node 'udf' (run_udf): the UDF raised ZeroDivisionError: integer division or modulo by zero "
        "(line 5 of the UDF)"
    )


def test_a_failure_inside_a_callback_names_both_nodes() -> None:
    code = """
        def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
            raise ValueError("no clouds allowed")
    """
    graph = {"r": node("reduce_dimension", result=True, data=p("cube"), dimension="t",
                       reducer=callback(code))}
    with pytest.raises(ProcessGraphError, match=r"node 'r' \(reduce_dimension\) > callback node 'udf' "
                                                r"\(run_udf\): the UDF raised ValueError: no clouds allowed"):
        run(graph, make_cube())


def test_a_memory_error_of_the_udf_is_not_turned_into_a_udf_error() -> None:
    """The job's worker turns a MemoryError into 'The job exceeded its memory limit of ... MB.'"""
    code = """
        def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
            raise MemoryError()
    """
    with pytest.raises(MemoryError):
        run({"udf": udf_node(code, result=True, data=p("cube"))}, make_cube())


@pytest.mark.parametrize("code, message", [
    ("def helper(cube):\n    return cube\n", "the UDF failed: No UDF found."),
    ("import xarray\ndef apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:\n"
     "    return 3\n", "the UDF failed"),
    ("from openeo.udf import UdfData\ndef apply_udf_data(data: UdfData):\n    data.set_datacube_list([])\n",
     "the UDF returned 0 data cubes; it must return one"),
    ("import xarray\ndef apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:\n"
     "    return cube.expand_dims(z=[1])\n", "the UDF returned dimensions ['z']"),
    ("def apply_datacube(cube, context:\n", "the UDF raised SyntaxError"),
    ("import sys\ndef apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:\n"
     "    sys.exit(3)\n", "the UDF exited (SystemExit: 3) (line 3 of the UDF)"),
])
def test_a_udf_without_a_usable_result_is_refused_clearly(code: str, message: str) -> None:
    with pytest.raises(ProcessGraphError) as caught:
        run({"udf": node("run_udf", result=True, data=p("cube"), udf=code, runtime="Python")}, make_cube())
    assert caught.value.message.startswith("node 'udf' (run_udf): " + message), caught.value.message


@pytest.mark.parametrize("runtime", ["EOAP-CWL", "R"])
def test_a_runtime_other_than_python_is_refused(runtime: str) -> None:
    graph = {"udf": node("run_udf", result=True, data=p("cube"), udf=SCALE_B08, runtime=runtime)}
    with pytest.raises(ProcessGraphError) as caught:
        run(graph, make_cube())
    assert caught.value.code == "ProcessParameterInvalid"
    assert caught.value.reason == (
        f"runtime '{runtime}' is not supported by this backend; it runs Python UDFs"
    )


def test_which_runtimes_versions_and_udfs_are_accepted() -> None:
    for runtime in ("Python", "python", "PYTHON"):
        for version in (None, "3", "3.11", "3.x", "latest", PYTHON_VERSION):
            assert udf_problem("def f(): pass", runtime, version) is None, (runtime, version)
    assert udf_problem("code", "Python", "2.7") == (
        f"Python version '2.7' is not supported by this backend; it runs Python {PYTHON_VERSION}"
    )
    assert "not fetched" in str(udf_problem("https://example.org/udf.py", "Python", None))
    assert udf_problem({"from_parameter": "udf"}, {"from_parameter": "runtime"}, None) is None


def test_a_list_reaches_the_udf_as_structured_data_and_its_result_comes_back() -> None:
    """As the catalogue's sentinel1_changedetection widens its temporal extent."""
    code = """
        import datetime
        from openeo.udf import StructuredData, UdfData

        def widen(udf_data: UdfData) -> UdfData:
            start, end = (datetime.date.fromisoformat(d) for d in udf_data.get_structured_data_list()[0].data)
            days = datetime.timedelta(days=udf_data.user_context["days"])
            udf_data.set_structured_data_list([StructuredData([str(start - days), str(end + days)])])
            return udf_data
    """
    graph = {
        "udf": udf_node(code, data=p("extent"), context={"days": 6}),
        "first": node("array_element", result=True, data={"from_node": "udf"}, index=0),
    }
    assert Evaluator().evaluate(graph, {"extent": ["2023-06-01", "2023-07-01"]}) == "2023-05-26"
    graph["first"]["arguments"]["index"] = 1
    assert Evaluator().evaluate(graph, {"extent": ["2023-06-01", "2023-07-01"]}) == "2023-07-07"


def test_a_udf_writing_into_its_cube_leaves_the_input_and_the_overlap_of_other_chunks_alone() -> None:
    cube = make_cube(nt=1, bands=("B04",))
    original = cube.values.copy()
    code = """
        def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
            total = cube.sum()
            cube.values[:] = 0.0
            return cube + total
    """
    out = run({"udf": udf_node(code, result=True, data=p("cube"))}, cube)
    np.testing.assert_array_equal(cube.values, original)
    np.testing.assert_allclose(out.values, original.sum())
    size = [{"dimension": d, "value": 4, "unit": "px"} for d in ("x", "y")]
    overlap = [{"dimension": d, "value": 1, "unit": "px"} for d in ("x", "y")]
    graph = {"a": node("apply_neighborhood", result=True, data=p("cube"), process=callback(code), size=size,
                       overlap=overlap)}
    chunked = run(graph, cube)
    # The first chunk (rows and columns -1..4, the -1 being NaN padding) sums the original values.
    np.testing.assert_allclose(chunked.values[0, 0, 0, 0], np.nansum(original[0, 0, :5, :5]))
    np.testing.assert_allclose(chunked.values[0, 0, 0, 4], np.nansum(original[0, 0, :5, 3:9]))
