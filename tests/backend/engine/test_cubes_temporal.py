"""``aggregate_temporal`` against independent numpy references, on tiny cubes with uneven dates.

Every graph runs through the real evaluator; the expected values select each interval's dates
with pandas timestamps and reduce them with numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from openeo_upscale.backend.engine import Evaluator, ProcessGraphError
from tests.backend.engine.helpers import node, p

EPSG = 32631
TIMES = ["2023-01-03", "2023-01-10", "2023-01-31T23:59:59", "2023-02-01", "2023-02-14T12:00:00", "2023-06-20"]
"""Uneven dates, some right on interval bounds."""


def make_cube(seed: int = 0, times: list[str] = TIMES) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 100, size=(len(times), 2, 3, 4))
    values[1, 0, 0, 0] = np.nan
    return xr.DataArray(
        values,
        dims=("t", "bands", "y", "x"),
        coords={
            "t": instants(times),
            "bands": ["B04", "B08"],
            "y": 5_700_000.0 - (np.arange(3) + 0.5) * 10,
            "x": 600_000.0 + (np.arange(4) + 0.5) * 10,
        },
        attrs={"crs": EPSG, "resolution": 10.0, "nodata": 0},
    )


def instants(values: list[str]) -> np.ndarray:
    """ISO dates and date-times as UTC datetime64 values, with pandas."""
    return pd.to_datetime(values, utc=True, format="ISO8601").tz_localize(None).values


def reducer(process_id: str) -> dict[str, Any]:
    return {"process_graph": {"r": node(process_id, result=True, data=p("data"))}}


def aggregate(cube: xr.DataArray, **arguments: Any) -> Any:
    arguments.setdefault("reducer", reducer("mean"))
    graph = {"a": node("aggregate_temporal", result=True, data=p("cube"), **arguments)}
    return Evaluator().evaluate(graph, {"cube": cube})


def selected(cube: xr.DataArray, start: str, end: str) -> np.ndarray:
    """Positions of the dates in [start, end), with pandas (UTC)."""
    times = pd.DatetimeIndex(cube["t"].values).tz_localize("UTC")
    first, stop = (pd.Timestamp(bound) for bound in (start, end))
    first, stop = (b.tz_localize("UTC") if b.tzinfo is None else b.tz_convert("UTC") for b in (first, stop))
    return np.asarray((times >= first) & (times < stop))


def nanmean_or_nan(values: np.ndarray) -> np.ndarray:
    """numpy's nanmean over the first axis, NaN (without a warning) where nothing is valid."""
    valid = ~np.isnan(values)
    count = valid.sum(axis=0)
    total = np.where(valid, values, 0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


INTERVALS = [
    ["2023-01-01", "2023-02-01"],  # ends right before 2023-02-01: its label there is excluded
    ["2023-01-10", "2023-02-15"],  # overlaps the first; starts on a label, which is included
    ["2023-03-01", "2023-06-01"],  # no data at all
    ["2023-02-14T13:00:00+01:00", "2023-12-31"],  # 12:00 UTC: includes the label of 14 February
]


def test_intervals_with_overlap_gaps_and_an_empty_one_match_numpy() -> None:
    cube = make_cube()
    out = aggregate(cube, intervals=INTERVALS)
    assert out.dims == cube.dims and out.attrs["crs"] == EPSG
    expected_labels = instants(["2023-01-01", "2023-01-10", "2023-03-01", "2023-02-14T12:00"])
    np.testing.assert_array_equal(out["t"].values, expected_labels)
    counts = []
    for i, (start, end) in enumerate(INTERVALS):
        chosen = selected(cube, start, end)
        counts.append(int(chosen.sum()))
        np.testing.assert_allclose(out.values[i], nanmean_or_nan(cube.values[chosen]))
    assert counts == [3, 4, 0, 2]
    assert np.isnan(out.values[2]).all()


def test_user_labels_and_the_reducer_runs_on_empty_intervals_with_context() -> None:
    cube = make_cube()
    counting = {"process_graph": {
        "c": node("count", data=p("data")),
        "m": node("multiply", result=True, x={"from_node": "c"}, y=p("context")),
    }}
    labels = ["2023-01-15", "2023-07-01T06:00:00Z", "2023-04-15"]
    intervals = [INTERVALS[0], INTERVALS[3], INTERVALS[2]]
    out = aggregate(cube, intervals=intervals, labels=labels, reducer=counting, context=10)
    np.testing.assert_array_equal(out["t"].values, instants(labels))
    for i, (start, end) in enumerate(intervals):
        valid = ~np.isnan(cube.values[selected(cube, start, end)])
        np.testing.assert_array_equal(out.values[i], valid.sum(axis=0) * 10)
    # The spec runs reducers on empty intervals too: count gives 0 there, not nodata.
    assert (out.values[2] == 0).all()


def test_summer_means_then_their_mean_as_the_uhi_udp_computes_them() -> None:
    times = ["2021-06-05", "2021-07-20", "2021-09-01", "2022-08-31T23:00:00", "2023-05-31", "2023-06-01"]
    cube = make_cube(seed=1, times=times)
    summers = [[f"{year}-06-01", f"{year}-09-01"] for year in range(2019, 2025)]
    graph = {
        "a": node("aggregate_temporal", data=p("cube"), intervals=summers, reducer=reducer("mean")),
        "r": node("reduce_dimension", result=True, data={"from_node": "a"}, dimension="t",
                  reducer=reducer("mean")),
    }
    out = Evaluator().evaluate(graph, {"cube": cube})
    per_summer = np.stack([nanmean_or_nan(cube.values[selected(cube, s, e)]) for s, e in summers])
    np.testing.assert_allclose(out.values, nanmean_or_nan(per_summer))
    assert out.dims == ("bands", "y", "x")


def test_the_dimension_can_be_named_among_several_temporal_ones() -> None:
    cube = make_cube().expand_dims(season=pd.to_datetime(["2023-01-01"]).values)
    with pytest.raises(ProcessGraphError) as error:
        aggregate(cube, intervals=INTERVALS[:1])
    assert error.value.code == "TooManyDimensions"
    out = aggregate(cube, intervals=INTERVALS[:1], dimension="t")
    first = cube.values[0, selected(cube, *INTERVALS[0])]
    np.testing.assert_allclose(out.values[0, 0], nanmean_or_nan(first))
    assert out.sizes == {"season": 1, "t": 1, "bands": 2, "y": 3, "x": 4}


KEEPS_THE_ARRAY = {"process_graph": {"r": node("multiply", True, x=p("data"), y=2)}}


@pytest.mark.parametrize(
    ("arguments", "code", "words"),
    [
        ({"intervals": [["2023-02-01", "2023-02-01"]]}, "TemporalExtentEmpty", "empty"),
        ({"intervals": [["2023-03-01", "2023-02-01"]]}, "TemporalExtentEmpty", "after its start"),
        ({"intervals": [["2023-01-01", "2023-02-01"], ["2023-01-01", "2023-03-01"]]},
         "DistinctDimensionLabelsRequired", "labels"),
        ({"intervals": INTERVALS[:2], "labels": ["2023-01-01", "2023-01-01T00:00:00Z"]},
         "DistinctDimensionLabelsRequired", "not distinct"),
        ({"intervals": INTERVALS[:2], "labels": ["2023-01-01"]}, "ProcessParameterInvalid", "1 labels for 2"),
        ({"intervals": INTERVALS[:1], "labels": ["winter"]}, "ProcessParameterInvalid", "date-times"),
        ({"intervals": [["06:00:00", "18:00:00"]]}, "ProcessParameterInvalid", "dates or date-times"),
        ({"intervals": [["2023-01-01", None]]}, "ProcessParameterInvalid", "None"),
        ({"intervals": [["2023-01-01"]]}, "ProcessParameterInvalid", "[start, end]"),
        ({"intervals": []}, "ProcessParameterInvalid", "non-empty"),
        ({"intervals": INTERVALS, "dimension": "time"}, "DimensionNotAvailable", "no dimension 'time'"),
        ({"intervals": INTERVALS, "dimension": "bands"}, "DimensionNotAvailable", "not temporal"),
        ({"intervals": INTERVALS, "reducer": KEEPS_THE_ARRAY}, "ProcessParameterInvalid", "one value"),
    ],
)
def test_bad_intervals_labels_dimensions_and_reducers_are_refused(
    arguments: dict[str, Any], code: str, words: str
) -> None:
    with pytest.raises(ProcessGraphError) as error:
        aggregate(make_cube(), **arguments)
    assert error.value.code == code
    assert words in error.value.reason and error.value.node_id == "a"


def test_a_cube_without_time_is_refused() -> None:
    cube = make_cube().isel(t=0, drop=True)
    with pytest.raises(ProcessGraphError) as error:
        aggregate(cube, intervals=INTERVALS)
    assert error.value.code == "DimensionNotAvailable" and "no temporal dimension" in error.value.reason
