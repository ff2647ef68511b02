"""Array, math, logic and date processes against independent numpy references."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from openeo_upscale.backend.engine import ARRAY_DIM, Evaluator, ProcessGraphError, default_registry

RNG = np.random.default_rng(42)


def run(process_id: str, **arguments: Any) -> Any:
    """Evaluate one process with literal arguments (DataArrays passed as parameters)."""
    params = {}
    args = {}
    for name, value in arguments.items():
        if isinstance(value, np.ndarray | xr.DataArray) or (
            isinstance(value, list) and any(isinstance(v, xr.DataArray) for v in value)
        ):
            params[name] = value
            args[name] = {"from_parameter": name}
        else:
            args[name] = value
    graph = {"n": {"process_id": process_id, "arguments": args, "result": True}}
    return Evaluator(default_registry()).evaluate(graph, params)


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


ELEMENTWISE = {
    "add": (("x", "y"), np.add),
    "subtract": (("x", "y"), np.subtract),
    "multiply": (("x", "y"), np.multiply),
    "divide": (("x", "y"), np.divide),
    "power": (("base", "p"), np.power),
    "normalized_difference": (("x", "y"), lambda x, y: (x - y) / (x + y)),
    "absolute": (("x",), np.abs),
    "sqrt": (("x",), np.sqrt),
    "exp": (("p",), np.exp),
    "ln": (("x",), np.log),
    "floor": (("x",), np.floor),
    "ceil": (("x",), np.ceil),
    "int": (("x",), np.trunc),
    "sin": (("x",), np.sin),
    "eq": (("x", "y"), np.equal),
    "neq": (("x", "y"), np.not_equal),
    "lt": (("x", "y"), np.less),
    "lte": (("x", "y"), np.less_equal),
    "gt": (("x", "y"), np.greater),
    "gte": (("x", "y"), np.greater_equal),
    "is_nan": (("x",), np.isnan),
}


@pytest.mark.parametrize("process_id", sorted(ELEMENTWISE))
def test_elementwise_on_cubes_broadcasts(process_id: str) -> None:
    params, reference = ELEMENTWISE[process_id]
    x = xr.DataArray(np.round(RNG.random((2, 3)) * 4, 1), dims=("y", "x"))
    x[0, 0] = np.nan
    y = xr.DataArray(np.round(RNG.random(3) * 4, 1) + 0.1, dims=("x",))
    values = dict(zip(params, (x, y), strict=False))
    result = run(process_id, **values)
    with np.errstate(all="ignore"):
        expected = reference(*(v.values if v.ndim == 2 else v.values[None, :] for v in values.values()))
    assert result.dims == ("y", "x")
    np.testing.assert_allclose(result.values, expected, equal_nan=True)


def test_scalars_and_null() -> None:
    assert run("add", x=1, y=2) == 3
    assert run("divide", x=1, y=0) == float("inf")
    assert run("add", x=1, y=None) is None
    assert run("eq", x=None, y=1) is None
    assert run("eq", x="A", y="a", case_sensitive=False) is True
    assert run("eq", x=1, y=1.05, delta=0.1) is True
    assert run("round", x=2.5) == 2.0
    assert run("round", x=1.2345, p=2) == pytest.approx(1.23)
    assert run("clip", x=12, min=0, max=10) == 10
    assert run("linear_scale_range", x=15, inputMin=0, inputMax=10, outputMin=0, outputMax=100) == 100
    assert run("log", x=100, base=10) == pytest.approx(2)
    assert run("between", x=5, min=0, max=5, exclude_max=True) is False
    assert run("is_nan", x="text") is True
    assert run("is_nodata", x=None) is True
    assert run("is_valid", x=float("inf")) is False


def test_logic_three_valued() -> None:
    assert run("and", x=True, y=None) is None
    assert run("and", x=False, y=None) is False
    assert run("or", x=True, y=None) is True
    assert run("xor", x=True, y=False) is True
    assert run("not", x=None) is None
    x = xr.DataArray(np.array([1.0, 0.0, np.nan, np.nan]), dims="i")
    y = xr.DataArray(np.array([np.nan, np.nan, 1.0, 0.0]), dims="i")
    np.testing.assert_array_equal(run("and", x=x, y=y).values, [np.nan, 0.0, np.nan, 0.0])
    np.testing.assert_array_equal(run("or", x=x, y=y).values, [1.0, np.nan, 1.0, np.nan])
    b1 = xr.DataArray(np.array([True, False]), dims="i")
    assert run("or", x=b1, y=~b1).dtype == bool


def test_if_replaces_nan_like_bap() -> None:
    x = xr.DataArray(np.array([1.0, np.nan, 3.0]), dims="i")
    graph = {
        "isnan1": {"process_id": "is_nan", "arguments": {"x": {"from_parameter": "x"}}},
        "if1": {
            "process_id": "if",
            "arguments": {"accept": 0, "reject": {"from_parameter": "x"}, "value": {"from_node": "isnan1"}},
            "result": True,
        },
    }
    result = Evaluator(default_registry()).evaluate(graph, {"x": x})
    np.testing.assert_array_equal(result.values, [1.0, 0.0, 3.0])
    assert run("if", value=False, accept=1) is None


def test_dates_on_strings() -> None:
    assert run("date_replace_component", date="2022-05-03", component="day", value=15) == "2022-05-15"
    assert run("date_replace_component", date="2022-05-03T10:20:30Z", component="hour", value=1) == (
        "2022-05-03T01:20:30Z"
    )
    assert run("date_difference", date1="2022-05-15", date2="2022-05-03", unit="day") == -12
    assert run("date_difference", date1="2022-05-03T00:00:00Z", date2="2022-05-03T01:00:00+00:00") == 3600
    assert run("date_shift", date="2020-01-31", value=1, unit="month") == "2020-02-29"
    assert run("date_shift", date="2020-01-31", value=-2, unit="day") == "2020-01-29"
    assert run("date_shift", date="2020-01-31", value=3, unit="hour") == "2020-01-31T03:00:00Z"
    with pytest.raises(ProcessGraphError, match="invalid date"):
        run("date_replace_component", date="2022-02-03", component="day", value=30)


def test_dates_on_arrays() -> None:
    dates = np.array(["2022-01-31", "2022-02-10T12:00"], dtype="datetime64[ns]")
    labels = xr.DataArray(dates, dims=ARRAY_DIM)
    replaced = run("date_replace_component", date=labels, component="month", value=3)
    np.testing.assert_array_equal(
        replaced.values, np.array(["2022-03-31", "2022-03-10T12:00"], dtype="datetime64[ns]")
    )
    shifted = run("date_shift", date=dates, value=1, unit="month")
    np.testing.assert_array_equal(
        shifted, np.array(["2022-02-28", "2022-03-10T12:00"], dtype="datetime64[ns]")
    )
    diff = run("date_difference", date1="2022-01-01", date2=labels, unit="hour")
    np.testing.assert_array_equal(diff.values, (dates - np.datetime64("2022-01-01")) / np.timedelta64(1, "h"))
