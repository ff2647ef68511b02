"""What every synthetic provider checks its requests with: the bounds of an area, the instants of a
temporal extent, the bands and the resolution asked for."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

__all__ = ["Bounds", "as_datetime", "check_bands", "check_bounds", "resolution_of"]

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


def check_bands(bands: Sequence[str], known: Iterable[str], collection: str, note: str = "") -> None:
    """Refuse an empty band list and bands the collection does not have (`note` adds a reason)."""
    if not bands:
        raise ValueError("no bands requested")
    names = list(known)
    unknown = [b for b in bands if b not in names]
    if unknown:
        raise ValueError(f"unknown bands {unknown}; {collection} has {names}{note}")


def resolution_of(resolution: float | None, default: float) -> float:
    """The output resolution in metres: `resolution`, else `default`; refused unless positive."""
    res = float(resolution) if resolution is not None else float(default)
    if not (math.isfinite(res) and res > 0):
        raise ValueError(f"resolution must be a positive number of metres, not {resolution}")
    return res
