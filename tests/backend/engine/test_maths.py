"""Math, comparison and logic processes against independent numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from openeo_upscale.backend.engine import ARRAY_DIM, Evaluator, default_registry
from tests.backend.engine.helpers import run

RNG = np.random.default_rng(7)


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


UNARY = {
    "absolute": np.abs,
    "sgn": np.sign,
    "cos": np.cos,
    "tan": np.tan,
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "is_infinite": np.isinf,
}


@pytest.mark.parametrize("process_id", sorted(UNARY))
def test_unary_math_on_cubes_and_scalars(process_id: str) -> None:
    """Values in (-1, 1) so the inverse trigonometric functions are defined; NaN and inf too."""
    values = RNG.uniform(-0.99, 0.99, size=(3, 4))
    values[0, 0], values[1, 1] = np.nan, np.inf
    x = xr.DataArray(values, dims=("y", "x"))
    with np.errstate(all="ignore"):
        expected = UNARY[process_id](values)
    result = run(process_id, x=x)
    assert result.dims == ("y", "x")
    np.testing.assert_allclose(result.values, expected, equal_nan=True)
    assert run(process_id, x=float(values[2, 3])) == pytest.approx(UNARY[process_id](values[2, 3]))
    assert run(process_id, x=None) is None


def test_binary_math_on_arrays_against_python() -> None:
    x = xr.DataArray(np.array([-27.0, 27.0, -5.5, 7.0, np.nan]), dims="i")
    y = xr.DataArray(np.array([5.0, -5.0, 2.0, 7.0, 1.0]), dims="i")
    expected_mod = [a % b if not np.isnan(a) else np.nan for a, b in zip(x.values, y.values, strict=True)]
    np.testing.assert_allclose(run("mod", x=x, y=y).values, expected_mod, equal_nan=True)
    assert run("mod", x=-27, y=5) == 3
    expected_atan2 = [np.arctan2(a, b) for a, b in zip(y.values, x.values, strict=True)]
    np.testing.assert_allclose(run("arctan2", y=y, x=x).values, expected_atan2, equal_nan=True)
    np.testing.assert_allclose(
        run("log", x=y.where(y > 0), base=2).values, np.log2(np.where(y.values > 0, y.values, np.nan))
    )


def test_parametrised_math_on_arrays() -> None:
    values = RNG.normal(scale=20, size=(4, 5))
    values[0, 0] = np.nan
    x = xr.DataArray(values, dims=("y", "x"))
    np.testing.assert_allclose(run("clip", x=x, min=-5, max=5).values, np.clip(values, -5, 5), equal_nan=True)
    np.testing.assert_allclose(run("round", x=x, p=1).values, np.round(values, 1), equal_nan=True)
    scaled = run("linear_scale_range", x=x, inputMin=-10, inputMax=10, outputMin=0, outputMax=255)
    np.testing.assert_allclose(scaled.values, (np.clip(values, -10, 10) + 10) / 20 * 255, equal_nan=True)
    inside = run("between", x=x, min=-10, max=10)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(inside.values, (values >= -10) & (values <= 10))
    assert run("constant", x=3.5) == 3.5


def test_nodata_and_validity_on_arrays() -> None:
    values = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    x = xr.DataArray(values, dims="i")
    np.testing.assert_array_equal(run("is_nodata", x=x).values, np.isnan(values))
    np.testing.assert_array_equal(run("is_valid", x=x).values, np.isfinite(values))
    np.testing.assert_array_equal(run("is_infinite", x=x).values, np.isinf(values))
    assert run("is_nodata", x=1) is False
    assert run("is_valid", x=3) is True
    assert run("is_valid", x=None) is False


def test_logic_on_boolean_and_float_arrays_against_numpy() -> None:
    a = xr.DataArray(RNG.random(12) < 0.5, dims="i")
    b = xr.DataArray(RNG.random(12) < 0.5, dims="i")
    np.testing.assert_array_equal(run("and", x=a, y=b).values, a.values & b.values)
    np.testing.assert_array_equal(run("or", x=a, y=b).values, a.values | b.values)
    np.testing.assert_array_equal(run("xor", x=a, y=b).values, a.values ^ b.values)
    np.testing.assert_array_equal(run("not", x=a).values, ~a.values)
    f = xr.DataArray(np.array([1.0, 0.0, np.nan, 2.0]), dims="i")
    g = xr.DataArray(np.array([0.0, 0.0, 1.0, 3.0]), dims="i")
    np.testing.assert_array_equal(run("xor", x=f, y=g).values, [1.0, 0.0, np.nan, 0.0])
    np.testing.assert_array_equal(run("not", x=f).values, [0.0, 1.0, np.nan, 0.0])


def test_if_on_arrays_with_array_branches() -> None:
    value = xr.DataArray(np.array([1.0, 0.0, np.nan, 5.0]), dims="i")
    accept = xr.DataArray(np.arange(4.0), dims="i")
    result = run("if", value=value, accept=accept, reject=-1)
    np.testing.assert_array_equal(
        result.values, np.where(np.nan_to_num(value.values) != 0, accept.values, -1)
    )
    np.testing.assert_array_equal(run("if", value=value, accept=1).values, [1.0, np.nan, np.nan, 1.0])


def test_if_with_list_branches_gives_each_pixel_an_array() -> None:
    """A colour ramp, as the catalogue's index visualisations write it: per pixel, `accept` or
    `reject` is an RGB triple; `array_create` of that per-pixel array returns it as it is."""
    ndvi = xr.DataArray(np.array([[0.1, 0.7], [np.nan, 0.5]]), dims=("y", "x"))
    graph = {
        "lt": {"process_id": "lt", "arguments": {"x": {"from_parameter": "ndvi"}, "y": 0.6}},
        "if": {"process_id": "if", "arguments": {"value": {"from_node": "lt"}, "accept": [0.5, 0.4, 0.1],
                                                 "reject": [0.0, 0.8, 0.0]}},
        "rgb": {"process_id": "array_create", "arguments": {"data": {"from_node": "if"}}, "result": True},
    }
    result = Evaluator(default_registry()).evaluate(graph, {"ndvi": ndvi})
    assert result.sizes[ARRAY_DIM] == 3
    rgb = result.transpose("y", "x", ARRAY_DIM).values
    low = np.array([0.5, 0.4, 0.1])
    high = np.array([0.0, 0.8, 0.0])
    # NaN < 0.6 is false (null), so the missing pixel takes `reject`.
    np.testing.assert_array_equal(rgb, np.array([[low, high], [high, low]]))
