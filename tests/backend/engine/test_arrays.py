"""Array processes and reducers against independent numpy references.

:func:`run` evaluates one process through the real evaluator; test_maths and test_dates use it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from openeo_upscale.backend.engine import ARRAY_DIM, Evaluator, ProcessGraphError, default_registry
from tests.backend.engine.helpers import run

RNG = np.random.default_rng(42)


def cube_with_nans() -> xr.DataArray:
    """A (y, x, ARRAY_DIM) cube with NaNs, including one all-NaN pixel."""
    values = RNG.normal(size=(3, 4, 5))
    values[RNG.random(values.shape) < 0.3] = np.nan
    values[0, 0, :] = np.nan
    return xr.DataArray(values, dims=("y", "x", ARRAY_DIM), coords={ARRAY_DIM: list("abcde")})


def nan_reference(func: Any, a: np.ndarray) -> np.ndarray:
    """Apply a numpy nan-reducer per pixel, NaN for an all-NaN pixel (no warnings)."""
    out = np.full(a.shape[:-1], np.nan)
    for idx in np.ndindex(a.shape[:-1]):
        valid = a[idx][~np.isnan(a[idx])]
        if valid.size:
            out[idx] = func(valid)
    return out


REFERENCES = {
    "max": np.max,
    "min": np.min,
    "mean": np.mean,
    "median": np.median,
    "sum": np.sum,
    "product": np.prod,
    "first": lambda v: v[0],
    "last": lambda v: v[-1],
    "sd": lambda v: np.std(v, ddof=1) if v.size > 1 else np.nan,
    "variance": lambda v: np.var(v, ddof=1) if v.size > 1 else np.nan,
}


@pytest.mark.parametrize("process_id", sorted(REFERENCES))
def test_reducers_on_cubes_ignore_nodata(process_id: str) -> None:
    cube = cube_with_nans()
    result = run(process_id, data=cube)
    assert result.dims == ("y", "x")
    np.testing.assert_allclose(
        result.values, nan_reference(REFERENCES[process_id], cube.values), equal_nan=True
    )


@pytest.mark.parametrize("process_id", sorted(REFERENCES))
def test_reducers_on_cubes_with_nodata(process_id: str) -> None:
    cube = cube_with_nans()
    result = run(process_id, data=cube, ignore_nodata=False)
    a = cube.values
    expected = np.full(a.shape[:-1], np.nan)
    for idx in np.ndindex(a.shape[:-1]):
        if process_id == "first" or process_id == "last":
            expected[idx] = a[idx][0 if process_id == "first" else -1]
        elif not np.isnan(a[idx]).any():
            expected[idx] = REFERENCES[process_id](a[idx])
    np.testing.assert_allclose(result.values, expected, equal_nan=True)


@pytest.mark.parametrize("process_id", sorted(REFERENCES))
def test_reducers_on_lists(process_id: str) -> None:
    data = [3.0, None, 1.5, 7.0, -2.0]
    expected = REFERENCES[process_id](np.array([3.0, 1.5, 7.0, -2.0]))
    assert run(process_id, data=data) == pytest.approx(expected)
    assert run(process_id, data=[None, None]) != run(process_id, data=[None, None])  # NaN


def test_max_keeps_integers_and_lists_of_cubes_stack() -> None:
    a = xr.DataArray(np.array([[1, 5], [3, 2]]), dims=("y", "x"))
    b = xr.DataArray(np.array([[4, 0], [3, 9]]), dims=("y", "x"))
    result = run("max", data=[a, b, 2])
    np.testing.assert_array_equal(result.values, np.maximum(np.maximum(a.values, b.values), 2))
    assert result.dtype.kind == "i"


def test_count_any_all() -> None:
    cube = cube_with_nans()
    np.testing.assert_array_equal(run("count", data=cube).values, (~np.isnan(cube.values)).sum(-1))
    np.testing.assert_array_equal(run("count", data=cube, condition=True).values, np.full((3, 4), 5))
    condition = {
        "process_graph": {
            "g": {"process_id": "gt", "arguments": {"x": {"from_parameter": "x"}, "y": 0}, "result": True}
        }
    }
    np.testing.assert_array_equal(
        run("count", data=cube, condition=condition).values, (cube.values > 0).sum(-1)
    )
    flags = xr.DataArray(RNG.random((3, 4, 6)) < 0.2, dims=("y", "x", ARRAY_DIM))
    np.testing.assert_array_equal(run("any", data=flags).values, flags.values.any(-1))
    np.testing.assert_array_equal(run("all", data=flags).values, flags.values.all(-1))
    assert run("any", data=[False, None, True]) == 1
    assert run("all", data=[True, None]) == 1
    assert run("all", data=[True, None], ignore_nodata=False) != run(
        "all", data=[True, None], ignore_nodata=False
    )


def test_array_element() -> None:
    cube = cube_with_nans()
    np.testing.assert_array_equal(run("array_element", data=cube, index=2).values, cube.values[..., 2])
    np.testing.assert_array_equal(run("array_element", data=cube, label="d").values, cube.values[..., 3])
    assert ARRAY_DIM not in run("array_element", data=cube, index=0).coords
    assert run("array_element", data=[1, "b", 3], index=1) == "b"
    assert np.isnan(run("array_element", data=cube, index=9, return_nodata=True).values).all()
    with pytest.raises(ProcessGraphError, match="out of range"):
        run("array_element", data=cube, index=9)
    with pytest.raises(ProcessGraphError, match="label 'z' is not in the array"):
        run("array_element", data=cube, label="z")
    dated = xr.DataArray(
        [1.0, 2.0],
        dims=ARRAY_DIM,
        coords={ARRAY_DIM: np.array(["2022-05-01", "2022-05-06"], dtype="datetime64[ns]")},
    )
    assert float(run("array_element", data=dated, label="2022-05-06").values) == 2.0


def test_array_create_concat_find_contains() -> None:
    assert run("array_create", data=[1, 2], repeat=2) == [1, 2, 1, 2]
    a = xr.DataArray(np.array([1.0, 2.0]), dims="x")
    stacked = run("array_create", data=[a, 3])
    assert stacked.dims == (ARRAY_DIM, "x")
    np.testing.assert_array_equal(stacked.values, [[1, 2], [3, 3]])
    assert run("array_concat", array1=[1], array2=[2, 3]) == [1, 2, 3]
    assert run("array_find", data=[5, 6, 5], value=5) == 0
    assert run("array_find", data=[5, 6, 5], value=5, reverse=True) == 2
    assert run("array_find", data=[5, 6], value=7) is None
    assert run("array_contains", data=[5, 6], value=6) is True


def test_array_apply_on_lists_calls_the_callback_per_element() -> None:
    process = {
        "process_graph": {
            "m": {
                "process_id": "add",
                "arguments": {"x": {"from_parameter": "x"}, "y": {"from_parameter": "index"}},
                "result": True,
            }
        }
    }
    assert run("array_apply", data=[10, 20, 30], process=process) == [10, 21, 32]


def test_bap_day_of_month_weights_via_array_apply_labels() -> None:
    """The date callback of bap_composite's first apply_neighborhood, vectorised over labels."""
    dates = np.array(["2022-05-03", "2022-05-20", "2022-06-01"], dtype="datetime64[ns]")
    cube = xr.DataArray(RNG.random((3, 2, 2)), dims=(ARRAY_DIM, "y", "x"), coords={ARRAY_DIM: dates})
    process = {
        "process_graph": {
            "datereplacecomponent1": {
                "process_id": "date_replace_component",
                "arguments": {"component": "day", "date": {"from_parameter": "label"}, "value": 15},
            },
            "datedifference1": {
                "process_id": "date_difference",
                "arguments": {
                    "date1": {"from_node": "datereplacecomponent1"},
                    "date2": {"from_parameter": "label"},
                    "unit": "day",
                },
            },
            "add1": {
                "process_id": "add",
                "arguments": {"x": 15, "y": {"from_node": "datedifference1"}},
                "result": True,
            },
        }
    }
    result = run("array_apply", data=cube, process=process)
    assert result.dims == cube.dims
    np.testing.assert_array_equal(result.coords[ARRAY_DIM].values, dates)
    expected = np.array([3.0, 20.0, 1.0])[:, None, None] * np.ones((3, 2, 2))
    np.testing.assert_array_equal(result.values, expected)


def test_bap_max_mask_uses_enclosing_data_parameter() -> None:
    """bap_composite's second apply_neighborhood: `data` inside array_apply is the outer data."""
    cube = xr.DataArray(RNG.random((4, 2, 3)), dims=(ARRAY_DIM, "y", "x"))
    graph = {
        "outer": {
            "process_id": "array_apply",
            "arguments": {
                "data": {"from_parameter": "data"},
                "process": {
                    "process_graph": {
                        "max1": {"process_id": "max", "arguments": {"data": {"from_parameter": "data"}}},
                        "neq1": {
                            "process_id": "neq",
                            "arguments": {"x": {"from_parameter": "x"}, "y": {"from_node": "max1"}},
                            "result": True,
                        },
                    }
                },
            },
            "result": True,
        }
    }
    result = Evaluator(default_registry()).evaluate(graph, {"data": cube})
    np.testing.assert_array_equal(result.values, cube.values != cube.values.max(axis=0))


def _callback(process_id: str, **arguments: Any) -> dict[str, Any]:
    return {"process_graph": {"c": {"process_id": process_id, "arguments": arguments, "result": True}}}


def test_array_labels() -> None:
    cube = cube_with_nans()
    assert run("array_labels", data=cube) == list("abcde")
    dates = np.array(["2022-05-01", "2022-05-06"], dtype="datetime64[ns]")
    dated = xr.DataArray([1.0, 2.0], dims=ARRAY_DIM, coords={ARRAY_DIM: dates})
    np.testing.assert_array_equal(np.array(run("array_labels", data=dated)), dates)
    with pytest.raises(ProcessGraphError, match="no labels"):
        run("array_labels", data=[1, 2])


def test_callbacks_invoked_many_times_on_lists_and_numpy_arrays() -> None:
    """array_apply calls its callback once per element of a list or numpy array; count too."""
    values = RNG.normal(size=200)
    scaled = _callback("multiply", x={"from_parameter": "x"}, y={"from_parameter": "index"})
    from_list = run("array_apply", data=values.tolist(), process=scaled)
    np.testing.assert_allclose(from_list, values * np.arange(200))
    from_numpy = run("array_apply", data=values, process=scaled)
    assert isinstance(from_numpy, np.ndarray)
    np.testing.assert_allclose(from_numpy, values * np.arange(200))
    positive = _callback("gt", x={"from_parameter": "x"}, y=0)
    assert run("count", data=values.tolist(), condition=positive) == int((values > 0).sum())
    assert run("count", data=[1.0, None, 3.0]) == 2


def test_array_apply_on_a_cube_keeps_shape_and_labels() -> None:
    cube = cube_with_nans()
    process = _callback("power", base={"from_parameter": "x"}, p=2)
    result = run("array_apply", data=cube, process=process)
    assert result.dims == cube.dims
    assert list(result.coords[ARRAY_DIM].values) == list("abcde")
    np.testing.assert_allclose(result.values, cube.values**2, equal_nan=True)


def test_array_find_contains_concat_on_cubes() -> None:
    values = RNG.integers(0, 4, size=(3, 4, 6)).astype(float)
    cube = xr.DataArray(values, dims=("y", "x", ARRAY_DIM))
    hits = values == 2
    first = np.where(hits.any(-1), np.argmax(hits, axis=-1), np.nan)
    last = np.where(hits.any(-1), 5 - np.argmax(hits[..., ::-1], axis=-1), np.nan)
    np.testing.assert_array_equal(run("array_find", data=cube, value=2).values, first)
    np.testing.assert_array_equal(run("array_find", data=cube, value=2, reverse=True).values, last)
    np.testing.assert_array_equal(run("array_contains", data=cube, value=2).values, hits.any(-1))
    other = xr.DataArray(RNG.random((3, 4, 2)), dims=("y", "x", ARRAY_DIM))
    joined = run("array_concat", array1=cube, array2=other)
    assert joined.sizes[ARRAY_DIM] == 8
    np.testing.assert_array_equal(
        joined.transpose("y", "x", ARRAY_DIM).values, np.concatenate([values, other.values], axis=-1)
    )


def test_array_create_evaluates_child_processes_in_their_scope() -> None:
    """As worldcover_statistics writes a one-hot encoding: the items are child processes reading
    the enclosing callback's `data`."""
    codes = xr.DataArray(np.array([[10.0], [30.0], [80.0]]), dims=("i", ARRAY_DIM))

    def equals(code: int) -> dict[str, Any]:
        return {"process_graph": {"eq": {"process_id": "eq", "arguments": {"x": {"from_parameter": "data"},
                                                                           "y": code}, "result": True}}}

    items = [equals(10), equals(30), equals(80)]
    graph = {"create": {"process_id": "array_create", "arguments": {"data": items}, "result": True}}
    result = Evaluator(default_registry()).evaluate(graph, {"data": codes})
    np.testing.assert_array_equal(result.transpose("i", ARRAY_DIM).values, np.eye(3, dtype=bool))
