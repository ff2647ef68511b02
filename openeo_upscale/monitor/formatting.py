"""How the monitor writes numbers for people: durations, sizes, and a campaign's forecast."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NONE = "-"
"""What stands for a value that is not known."""


def format_duration(seconds: float | None, *, compact: bool = False) -> str:
    """``1h 02m 03s``, ``4m 05s``, ``12s``; compact (the terminal panel): ``1h02m``, ``4m05s``, ``12s``.
    `NONE` when unknown or negative."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return NONE
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if compact:
        return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def format_bytes(count: float | None) -> str:
    """``512 B``, ``3.4 MB``, ``1.2 GB`` (powers of 1000); `NONE` when unknown."""
    if count is None or not math.isfinite(count) or count < 0:
        return NONE
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1000
    return NONE  # not reached


def forecast_lines(forecast: Mapping[str, Any] | None, tracking: Mapping[str, Any] | None = None,
                   *, budget: float | None = None) -> list[str]:
    """A forecast (``Forecast.to_dict``) as lines for people: credits with their 90 % interval
    against the budget, the time left, the volume, and how the done tasks track it."""
    if not forecast:
        return []
    credits, makespan, volume = forecast["credits"], forecast["makespan_s"], forecast["volume_bytes"]
    basis = "the pilot" if forecast["basis"] == "pilot" else "the tasks done so far"
    line = (f"forecast from {basis} ({forecast['measured']:,} measured): {credits['median']:,.2f} credits "
            f"(90 %: {credits['low']:,.2f} to {credits['high']:,.2f})")
    if budget is not None:
        verdict = "OVER" if credits["median"] > budget else "within"
        line += f", {verdict} max_credits {budget:,.2f}"
    lines = [line]
    lines.append(
        f"  {format_duration(makespan.get('median'))} "
        f"left for {forecast['remaining']:,} task(s) on {forecast['slots']} slot(s) "
        f"(90 %: {format_duration(makespan.get('low'))} to {format_duration(makespan.get('high'))}); "
        f"{format_bytes(volume['median'])} of results"
    )
    per_km2 = forecast.get("credits_per_km2")
    if per_km2 is not None:
        lines.append(f"  {per_km2:,.4f} credits per km² and month, made {forecast['made'][:19]}Z")
    if tracking and tracking.get("ratio") is not None:
        lines.append(
            f"  tracking: {tracking['done']:,} task(s) done for {tracking['spent']:,.2f} credits, "
            f"{(tracking['ratio'] - 1) * 100:+.0f} % against the pilot's forecast for them "
            f"({tracking['expected']:,.2f})"
        )
    return lines
