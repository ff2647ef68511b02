"""What every synthetic provider checks its requests with: the bounds of an area, and the instants
of a temporal extent."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

__all__ = ["Bounds", "as_datetime", "check_bounds"]

Bounds = tuple[float, float, float, float]
"""West, south, east, north in metres of a UTM zone."""


def check_bounds(bounds: Bounds) -> None:
    """Refuse bounds that are not finite or not ordered west < east, south < north."""
    west, south, east, north = bounds
    if not all(math.isfinite(v) for v in bounds) or west >= east or south >= north:
        raise ValueError(f"bounds must be finite (west, south, east, north) with west < east and "
                         f"south < north, not {bounds}")


def as_datetime(value: str | date) -> datetime:
    """A naive UTC datetime: dates at midnight, ISO strings with or without time and offset."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
    return datetime(value.year, value.month, value.day)
