"""How the monitor writes numbers for people: durations."""

from __future__ import annotations

NONE = "-"
"""What stands for a value that is not known."""


def format_duration(seconds: float | None, *, compact: bool = False) -> str:
    """``1h 02m 03s``, ``4m 05s``, ``12s``; compact (the terminal panel): ``1h02m``, ``4m05s``, ``12s``.
    `NONE` when unknown or negative."""
    if seconds is None or seconds < 0:
        return NONE
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if compact:
        return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
