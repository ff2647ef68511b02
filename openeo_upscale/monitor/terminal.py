"""Live progress of a running campaign in the terminal (rich), or as plain log lines.

Both monitors are fed `Campaign.summary()` dictionaries by the caller's loop (the campaign runs in
its own thread), so they never touch the engine themselves:

    with TerminalMonitor() as monitor:
        campaign.start()
        while not campaign.wait(timeout=1):
            monitor.update(campaign.summary(), recent_errors(campaign.store, campaign.id))
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from openeo_upscale.campaign.health import BackendState, describe
from openeo_upscale.campaign.states import TASK_TERMINAL, TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.monitor.formatting import forecast_lines, format_duration

__all__ = ["LogMonitor", "Monitor", "Progress", "TerminalMonitor", "format_duration", "recent_errors"]

S = TaskState

THROUGHPUT_WINDOW = 600.0
"""Seconds of history the throughput (and so the ETA) is measured over."""

STATE_STYLES: Mapping[TaskState, str] = {
    S.PENDING: "white",
    S.CREATING: "cyan",
    S.QUEUED: "cyan",
    S.RUNNING: "blue",
    S.FINISHED: "green",
    S.DOWNLOADING: "green",
    S.DONE: "bold green",
    S.FAILED: "bold red",
    S.CANCELED: "yellow",
    S.SKIPPED: "dim",
    S.SPLIT: "magenta",
}
"""Colour of each task state in the terminal."""


class Monitor(Protocol):
    """Something that shows a campaign's progress; `update` is called about once a second."""

    def update(self, summary: Mapping[str, Any], errors: Sequence[str] = ()) -> None: ...

    def __enter__(self) -> Monitor: ...

    def __exit__(self, *exc_info: object) -> None: ...


class Progress:
    """Throughput (tasks done per minute) and ETA from successive summaries.

    ``clock`` returns seconds (monotonic); pass your own to test without sleeping.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 window: float = THROUGHPUT_WINDOW) -> None:
        self._clock = clock
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()
        self.started = clock()

    def add(self, summary: Mapping[str, Any]) -> None:
        """Record how many tasks are done now."""
        now = self._clock()
        self._samples.append((now, int(summary["counts"].get(S.DONE.value, 0))))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()

    @property
    def per_minute(self) -> float | None:
        """Tasks done per minute over the window; None before two samples some time apart."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 - t0 <= 0:
            return None
        return max(0, d1 - d0) * 60.0 / (t1 - t0)

    def eta(self, summary: Mapping[str, Any]) -> float | None:
        """Seconds until every task has ended at the current pace; None when unknown."""
        left = remaining(summary)
        if left == 0:
            return 0.0
        rate = self.per_minute
        if not rate:
            return None
        return left * 60.0 / rate

    @property
    def elapsed(self) -> float:
        """Seconds since the monitor started."""
        return self._clock() - self.started


def remaining(summary: Mapping[str, Any]) -> int:
    """Tasks that have not ended (not done, failed, canceled or skipped)."""
    ended = sum(int(summary["counts"].get(s.value, 0)) for s in TASK_TERMINAL)
    return int(summary["tasks"]) - ended


def forecast_budget(summary: Mapping[str, Any]) -> float | None:
    """The budget a summary's forecast is held against (``max_credits``, when the summary has it)."""
    value = (summary.get("forecast") or {}).get("max_credits")
    return float(value) if isinstance(value, int | float) else None


def recent_errors(store: Store, campaign_id: int, limit: int = 5) -> list[str]:
    """The last errors recorded on the campaign's tasks, newest first, one line each."""
    lines = []
    for task in store.tasks_with_errors(campaign_id, limit=limit):
        where = ", ".join(str(v) for v in (task.backend, task.job_id) if v)
        error = str(task.error).strip()
        first_line = error.splitlines()[0] if error else ""
        lines.append(f"{task.tile_id} [{task.state.value}{', ' + where if where else ''}]: {first_line}")
    return lines


def render(summary: Mapping[str, Any], progress: Progress, errors: Sequence[str] = ()) -> RenderableType:
    """The progress panel: states, backends, pace and credits, last errors."""
    counts: Mapping[str, int] = summary["counts"]
    total = int(summary["tasks"])
    states = Table(title=f"campaign {summary['campaign']}: {total:,} tasks", title_justify="left",
                   show_edge=False, pad_edge=False)
    shown = [s for s in TaskState if counts.get(s.value, 0) or s in (S.PENDING, S.RUNNING, S.DONE, S.FAILED)]
    for state in shown:
        states.add_column(state.value, justify="right", style=STATE_STYLES[state])
    states.add_row(*(f"{counts.get(s.value, 0):,}" for s in shown))

    unwell = {name: describe(entry) for name, entry in summary["backends"].items()}
    backends = Table(show_edge=False, pad_edge=False)
    backends.add_column("backend")
    for column in ("active", "done", "failed", "requests"):
        backends.add_column(column, justify="right")
    if any(unwell.values()):
        backends.add_column("health", overflow="fold")
    for name, entry in summary["backends"].items():
        slots = entry.get("parallel_jobs")
        active = f"{entry.get('active', 0)}/{slots}" if slots else str(entry.get("active", 0))
        per_state = entry.get("counts", {})
        cells: list[RenderableType] = [name, active, str(per_state.get(S.DONE.value, 0)),
                                       str(per_state.get(S.FAILED.value, 0)), str(entry.get("requests", "-"))]
        if any(unwell.values()):
            text = unwell[name]
            style = "bold red" if entry.get("state") == BackendState.UNUSABLE.value else "yellow"
            cells.append(Text(text, style=style) if text else Text("ok", style="green"))
        backends.add_row(*cells)

    rate = progress.per_minute
    pace = Text.assemble(
        ("throughput ", "dim"), f"{rate:.1f}/min" if rate is not None else "-",
        ("   ETA ", "dim"), format_duration(progress.eta(summary), compact=True),
        ("   elapsed ", "dim"), format_duration(progress.elapsed, compact=True),
        ("   credits ", "dim"), f"{float(summary.get('credits') or 0):,.2f}",
    )
    parts: list[RenderableType] = [states, Text(""), backends, Text(""), pace]
    forecast = summary.get("forecast")
    if forecast:
        lines = forecast_lines(forecast, summary.get("tracking"), budget=forecast_budget(summary))
        parts.extend(Text(line, style="cyan", overflow="ellipsis", no_wrap=True) for line in lines)
    if summary.get("blocked"):
        parts.append(Text(f"waiting: {summary['blocked']}", style="bold yellow"))
    if errors:
        parts.append(Text("last errors:", style="bold red"))
        parts.extend(Text(f"  {line}", overflow="ellipsis", no_wrap=True) for line in errors)
    return Group(*parts)


class TerminalMonitor:
    """A live-updating panel (rich `Live`); printed once at the end when the output is not a terminal."""

    def __init__(self, console: Console | None = None, *, progress: Progress | None = None) -> None:
        self.console = console or Console()
        self.progress = progress or Progress()
        self._live: Live | None = None
        self._last: RenderableType | None = None

    def __enter__(self) -> TerminalMonitor:
        # The caller refreshes about once a second; no auto-refresh thread of rich's own.
        self._live = Live(console=self.console, auto_refresh=False, transient=False)
        self._live.start()
        return self

    def update(self, summary: Mapping[str, Any], errors: Sequence[str] = ()) -> None:
        """Redraw from a fresh `summary` (and the last errors)."""
        self.progress.add(summary)
        self._last = render(summary, self.progress, errors)
        if self._live is not None:
            self._live.update(self._last, refresh=True)

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


class LogMonitor:
    """Plain lines, one when the counts change (and at least every ``every`` seconds): for logs and cron."""

    def __init__(self, stream: TextIO | None = None, *, every: float = 60.0,
                 progress: Progress | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._every = every
        self._clock = clock
        self.progress = progress or Progress(clock=clock)
        self._last_key: tuple[Any, ...] | None = None
        self._last_at = float("-inf")
        self._seen_errors: set[str] = set()
        self._health: dict[str, tuple[Any, ...] | None] = {}
        self._blocked: str | None = None

    def __enter__(self) -> LogMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def update(self, summary: Mapping[str, Any], errors: Sequence[str] = ()) -> None:
        """Print a line if anything changed since the last one, or ``every`` seconds passed."""
        self.progress.add(summary)
        stream = self._stream or sys.stdout
        for line in reversed(errors):
            if line not in self._seen_errors:
                self._seen_errors.add(line)
                print(f"{_stamp()} error: {line}", file=stream, flush=True)
        for name, entry in summary["backends"].items():
            # A line when a backend becomes unwell, when its trouble changes, and when it is over.
            unwell = describe(entry) is not None
            seen = (entry.get("state"), entry.get("reason"), entry.get("since")) if unwell else None
            before = self._health.get(name)
            self._health[name] = seen
            if seen != before:
                print(f"{_stamp()} backend {name} {describe(entry) or 'reachable again'}", file=stream,
                      flush=True)
        blocked = summary.get("blocked")
        if blocked != self._blocked:
            self._blocked = blocked
            print(f"{_stamp()} {'waiting: ' + blocked if blocked else 'no longer waiting'}", file=stream,
                  flush=True)
        key = (tuple(sorted(summary["counts"].items())), round(float(summary.get("credits") or 0), 2))
        now = self._clock()
        if key == self._last_key and now - self._last_at < self._every:
            return
        self._last_key, self._last_at = key, now
        print(f"{_stamp()} {line_of(summary, self.progress)}", file=stream, flush=True)


def line_of(summary: Mapping[str, Any], progress: Progress | None = None) -> str:
    """One line: counts of the states present, per-backend slot use, pace and credits."""
    counts = ", ".join(f"{s.value} {summary['counts'][s.value]:,}" for s in TaskState
                       if summary["counts"].get(s.value))
    slots = " ".join(
        f"{name} {entry.get('active', 0)}/{entry['parallel_jobs']}" if entry.get("parallel_jobs")
        else f"{name} {entry.get('active', 0)}"
        for name, entry in summary["backends"].items()
    )
    text = f"{summary['campaign']}: {summary['tasks']:,} tasks: {counts or 'none'}"
    if slots:
        text += f" | active {slots}"
    if progress is not None:
        rate = progress.per_minute
        if rate is not None:
            text += f" | {rate:.1f}/min, ETA {format_duration(progress.eta(summary), compact=True)}"
    return text + f" | credits {float(summary.get('credits') or 0):,.2f}"


def _stamp() -> str:
    return datetime.now().strftime("%H:%M:%S")
