"""Watching a campaign: terminal progress (and, later, the dashboard, the notebook map and reports)."""

from openeo_upscale.monitor.terminal import LogMonitor, Monitor, Progress, TerminalMonitor, recent_errors

__all__ = ["LogMonitor", "Monitor", "Progress", "TerminalMonitor", "recent_errors"]
