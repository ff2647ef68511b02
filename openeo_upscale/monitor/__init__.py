"""Watching a campaign: terminal progress, the notebook maps (`live_map`, `plot_map`), the
dashboard and the report."""

from typing import Any

from openeo_upscale.monitor.terminal import LogMonitor, Monitor, Progress, TerminalMonitor, recent_errors

__all__ = ["LogMonitor", "Monitor", "Progress", "TerminalMonitor", "live_map", "plot_map", "recent_errors"]


def __getattr__(name: str) -> Any:
    # The maps load plotly: imported on first use, so that `openeo-upscale run` does not pay for it.
    if name in ("live_map", "plot_map"):
        from openeo_upscale.monitor import maps

        return getattr(maps, name)
    raise AttributeError(f"module 'openeo_upscale.monitor' has no attribute {name!r}")
