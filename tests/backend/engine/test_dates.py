"""Date processes against independent numpy and pandas references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from openeo_upscale.backend.engine import ARRAY_DIM, ProcessGraphError
from tests.backend.engine.helpers import run


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


UNIT_SECONDS = {
    "millisecond": 1e-3,
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 7 * 86400.0,
    "month": 30.436875 * 86400.0,
    "year": 365.2425 * 86400.0,
}


@pytest.mark.parametrize("unit", sorted(UNIT_SECONDS))
def test_date_difference_in_every_unit_against_numpy(unit: str) -> None:
    start = np.datetime64("2021-03-14T06:30:00", "ns")
    dates = start + np.array([0, 90_061_500, 40 * 86400_000, -3_000_000_000], dtype="timedelta64[ms]")
    expected = (dates - start) / np.timedelta64(1, "s") / UNIT_SECONDS[unit]
    result = run(
        "date_difference", date1="2021-03-14T06:30:00Z", date2=xr.DataArray(dates, dims="t"), unit=unit
    )
    np.testing.assert_allclose(result.values, expected, rtol=1e-12)


def test_date_shift_on_a_data_array_against_pandas() -> None:
    dates = np.array(["2020-01-31", "2020-02-29T12:00", "2021-12-31"], dtype="datetime64[ns]")
    labels = xr.DataArray(dates, dims=ARRAY_DIM)
    for unit, offset in (("year", pd.DateOffset(years=1)), ("week", pd.Timedelta(weeks=-2))):
        shifted = run("date_shift", date=labels, value=1 if unit == "year" else -2, unit=unit)
        assert shifted.dims == (ARRAY_DIM,)
        np.testing.assert_array_equal(shifted.values, (pd.DatetimeIndex(dates) + offset).values)
