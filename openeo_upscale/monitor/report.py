"""A campaign report: one self-contained HTML file that can be mailed to a colleague.

The file holds the summary (tasks per state, credits, time span), the forecast of the campaign's
credits, time and volume (the newest one in the store, against the budget), the map of tiles, a timeline of
jobs per backend, histograms of job durations and credits, the failed tasks with their errors and
the retried tasks with each of their attempts. The timeline, the histograms and the credits come
from the job ledger: every backend job, retries included, each coloured by how it ended (the
task's state for its current job; ``failed`` or ``canceled`` for an attempt that another
followed). plotly.js is inlined once in the head; nothing is loaded from anywhere else (no CDN, no
web fonts, no map tiles), so the report opens offline. The map's coastlines, borders, rivers and
lakes are the package's Natural Earth lines near the tiles (`geography`), inlined with the figure.
Every value from the store is HTML-escaped.

Element ids, for tools that check the report renders: ``summary``, ``forecast``, ``failures``, ``retries``
(sections) and the plotly graph divs ``map``, ``timeline``, ``durations``, ``credits`` (each also
has the ``plotly-graph-div`` class); the ``<body>`` gets ``data-tasks`` (the number of tasks).
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from openeo_upscale.campaign.models import CampaignSettings, JobRecord, Task
from openeo_upscale.campaign.states import JobStatus, TaskState
from openeo_upscale.monitor.colors import STATE_COLORS
from openeo_upscale.monitor.formatting import NONE, forecast_lines, format_duration
from openeo_upscale.monitor.maps import map_figure

if TYPE_CHECKING:
    from openeo_upscale.campaign.store import Store

TIMELINE_MAX_BARS = 2_000
"""Above this many started jobs the timeline shows running jobs per backend over time instead of bars."""

MAX_FAILURES = 1_000
"""Failed tasks listed in the report's table; the rest are counted."""

MAX_RETRIED = 1_000
"""Retried tasks listed with their attempts in the report; the rest are counted."""

MAX_ERROR_CHARS = 4_000
"""Characters of one error message kept in a table."""

HOVER_ERROR_CHARS = 200
"""Characters of a job's error shown when hovering over its bar."""

GRAPH_IDS = ("map", "timeline", "durations", "credits")
"""The ids of the report's plotly graph divs, in page order."""

_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass(frozen=True)
class _Job:
    """One backend job of the ledger, with its task and how it ended (`_outcome`)."""

    record: JobRecord
    task: Task
    outcome: TaskState

    def span(self, now: datetime) -> tuple[datetime, datetime] | None:
        """From its start to its end (or to ``now`` while it runs); None when it never started."""
        start = self.record.started
        if start is None:
            return None
        return start, max(self.record.finished or now, start)


def write_report(store: Store, campaign_id: int, path: str | os.PathLike[str], *,
                 clock: Callable[[], datetime] | None = None) -> Path:
    """Write the campaign's report as one self-contained HTML file at ``path``; return the path.

    ``clock`` gives "now" (the end of jobs still running, the report's date); UTC now by default.
    """
    from openeo_upscale.campaign.store import utc_now

    now = (clock or utc_now)()
    row = store.campaign(campaign_id)
    tasks = list(store.all_tasks(campaign_id))
    name = str(row["name"])
    by_id = {task.id: task for task in tasks}
    jobs = [_Job(record, by_id[record.task_id], _outcome(record, by_id[record.task_id]))
            for record in store.ledger(campaign_id) if record.task_id in by_id]
    started = _started(jobs, now)

    figures = {
        "map": map_figure(tasks, html.escape(f"{name}: {len(tasks):,} tiles")),
        "timeline": _timeline(started),
        "durations": _histogram(jobs, "job duration (minutes)", _minutes),
        "credits": _histogram(jobs, "credits per job", lambda job: job.record.costs),
    }
    graphs = "\n".join(
        '<section class="graph">'
        + fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG)
        + "</section>"
        for div_id, fig in figures.items()
    )
    page = _PAGE.format(
        title=html.escape(f"Campaign {name}"),
        tasks=len(tasks),
        plotly=get_plotlyjs(),
        style=_STYLE,
        summary=_summary(row, tasks, jobs, started, store.credits(campaign_id), now),
        graphs=graphs,
        failures=_failures(tasks),
        retries=_retries(jobs),
        forecast=_forecast(store, campaign_id, row),
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


# the parts ------------------------------------------------------------------------------------------


_Bar = tuple[_Job, datetime, datetime]
"""A started job on the timeline, from its start to its end."""


def _outcome(record: JobRecord, task: Task) -> TaskState:
    """What a job is coloured by: its task's state while it is the task's current job, else how the
    attempt ended (one that another attempt followed, or that left its task pending, failed)."""
    if record.client_token == task.client_token and task.state is not TaskState.PENDING:
        return task.state
    return TaskState.CANCELED if record.status is JobStatus.CANCELED else TaskState.FAILED


def _started(jobs: Sequence[_Job], now: datetime) -> list[_Bar]:
    """The jobs that started, by backend and start."""
    bars = [(job, *span) for job in jobs if (span := job.span(now)) is not None]
    return sorted(bars, key=lambda bar: (bar[0].record.backend, bar[1], bar[0].task.id, bar[0].record.id))


def _summary(row: dict[str, object], tasks: Sequence[Task], jobs: Sequence[_Job], started: Sequence[_Bar],
             credits: float, now: datetime) -> str:
    counts = dict.fromkeys(TaskState, 0)
    for task in tasks:
        counts[task.state] += 1
    state_rows = "".join(
        f'<tr><td><span class="swatch" style="background:{STATE_COLORS[state]}"></span>{state.value}</td>'
        f'<td class="num">{count:,}</td></tr>'
        for state, count in counts.items() if count
    ) or '<tr><td colspan="2">no tasks</td></tr>'
    if started:
        first = min(start for _, start, _ in started)
        last = max(end for _, _, end in started)
        span = f"{_when(first)} to {_when(last)} ({format_duration((last - first).total_seconds())})"
    else:
        span = "no job has started"
    backends = sorted({job.record.backend for job in jobs} | {task.backend for task in tasks if task.backend})
    facts = [
        ("tasks", f"{len(tasks):,}"),
        ("credits", f"{credits:,.2f}"),
        ("backend jobs", f"{len(jobs):,}"),
        ("jobs started", f"{len(started):,}"),
        ("retried tasks", f"{len(_retried(jobs)):,}"),
        ("time span", span),
        ("backends", ", ".join(backends) or NONE),
        ("campaign created", _when(row["created"])),
        ("report written", _when(now)),
    ]
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return (f'<table class="facts">{fact_rows}</table>'
            f'<table class="states"><thead><tr><th>state</th><th>tasks</th></tr></thead>'
            f"<tbody>{state_rows}</tbody></table>")


def _forecast(store: Store, campaign_id: int, row: dict[str, object]) -> str:
    """The newest forecast, against the budget, and how the done tasks track the pilot's."""
    stored = store.forecast(campaign_id)
    if stored is None:
        return '<p class="muted">none: no pilot was run (openeo-upscale pilot) and no task is done</p>'
    found = stored.forecast
    config = row["config"]
    budget = CampaignSettings.from_dict(config if isinstance(config, dict) else {}).limits.max_credits
    lines = forecast_lines(found, found.get("tracking"), budget=budget)
    return "".join(f"<p>{html.escape(line.strip())}</p>" for line in lines)


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else NONE


def _timeline(bars: Sequence[_Bar]) -> go.Figure:
    """One horizontal bar per started job, a row per backend and tile (a task's attempts on one
    backend share its row), coloured by how the job ended; or, for many jobs, the number of jobs
    running on each backend over time."""
    figure = go.Figure()
    figure.update_layout(template="plotly_white", title="jobs per backend", barmode="overlay",
                         margin={"l": 50, "r": 20, "t": 50, "b": 40}, legend={"title": {"text": "state"}})
    figure.update_xaxes(type="date", title="time (UTC)")
    if not bars:
        _no_data(figure, "no job has started")
        figure.update_layout(height=300)
        return figure
    if len(bars) > TIMELINE_MAX_BARS:
        return _concurrency(figure, bars)
    by_outcome: dict[TaskState, list[_Bar]] = {}
    for bar in bars:
        by_outcome.setdefault(bar[0].outcome, []).append(bar)
    for state in TaskState:
        chosen = by_outcome.get(state)
        if not chosen:
            continue
        figure.add_trace(go.Bar(
            name=state.value, orientation="h", marker={"color": STATE_COLORS[state]},
            y=[[job.record.backend for job, _, _ in chosen], [job.task.tile_id for job, _, _ in chosen]],
            base=[start.isoformat() for _, start, _ in chosen],
            x=[(end - start).total_seconds() * 1000 for _, start, end in chosen],
            text=[_job_hover(*bar) for bar in chosen], textposition="none",
            hovertemplate="%{text}<extra></extra>",
        ))
    rows = list(dict.fromkeys((job.record.backend, job.task.tile_id) for job, _, _ in bars))
    figure.update_yaxes(type="multicategory", autorange="reversed", categoryorder="array",
                        categoryarray=[[backend for backend, _ in rows], [tile for _, tile in rows]])
    figure.update_layout(height=min(160 + 14 * len(rows), 4_000))
    return figure


def _concurrency(figure: go.Figure, bars: Sequence[_Bar]) -> go.Figure:
    """Jobs running per backend over time, as steps (for timelines with too many jobs for bars)."""
    changes: dict[str, list[tuple[datetime, int]]] = {}
    for job, start, end in bars:
        changes.setdefault(job.record.backend, []).extend(((start, 1), (end, -1)))
    for backend, steps in sorted(changes.items()):
        steps.sort(key=lambda step: (step[0], step[1]))
        level, xs, ys = 0, [], []
        for at, delta in steps:
            level += delta
            xs.append(at.isoformat())
            ys.append(level)
        figure.add_trace(go.Scatter(name=html.escape(backend), x=xs, y=ys, mode="lines",
                                    line={"shape": "hv"}))
    figure.update_layout(title=f"jobs running per backend ({len(bars):,} jobs)",
                         legend={"title": {"text": "backend"}}, height=400)
    figure.update_yaxes(title="running jobs", rangemode="tozero")
    return figure


def _job_hover(job: _Job, start: datetime, end: datetime) -> str:
    record = job.record
    lines = [
        f"<b>{html.escape(job.task.tile_id)}</b> attempt {record.attempt}",
        f"outcome: {job.outcome.value}",
        f"job status: {_status(record)}",
        f"backend: {html.escape(record.backend)}",
        f"job: {html.escape(record.job_id or NONE)}",
        f"{_when(start)} to {_when(end)}",
        f"duration: {format_duration((end - start).total_seconds())}",
        f"credits: {_credits(record.costs)}",
    ]
    first_line = (record.error or "").strip().splitlines()[:1]
    if first_line:
        lines.append(f"error: {html.escape(_bounded(first_line[0], HOVER_ERROR_CHARS))}")
    return "<br>".join(lines)


def _status(record: JobRecord) -> str:
    return record.status.value if record.status is not None else NONE


def _credits(costs: float | None) -> str:
    return NONE if costs is None else f"{costs:,.2f}"


def _bounded(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text[:limit] + " …" if len(text) > limit else text


def _minutes(job: _Job) -> float | None:
    record = job.record
    if record.started is None or record.finished is None:
        return None
    return max((record.finished - record.started).total_seconds(), 0.0) / 60


def _histogram(jobs: Sequence[_Job], label: str, value: Callable[[_Job], float | None]) -> go.Figure:
    """A histogram of ``value`` over the jobs that have one, stacked by how they ended."""
    figure = go.Figure()
    figure.update_layout(template="plotly_white", title=label, barmode="stack", height=350,
                         margin={"l": 50, "r": 20, "t": 50, "b": 40}, legend={"title": {"text": "state"}})
    figure.update_xaxes(title=label)
    figure.update_yaxes(title="jobs")
    by_outcome: dict[TaskState, list[float]] = {}
    for job in jobs:
        found = value(job)
        if found is not None:
            by_outcome.setdefault(job.outcome, []).append(found)
    for state in TaskState:
        if by_outcome.get(state):
            figure.add_trace(go.Histogram(name=state.value, x=by_outcome[state],
                                          marker={"color": STATE_COLORS[state]}))
    if not by_outcome:
        _no_data(figure, "no finished job yet")
    return figure


def _no_data(figure: go.Figure, text: str) -> None:
    figure.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                          font={"size": 16})
    figure.update_xaxes(showticklabels=False)
    figure.update_yaxes(showticklabels=False)


def _failures(tasks: Sequence[Task]) -> str:
    failed = [task for task in tasks if task.state is TaskState.FAILED]
    if not failed:
        return "<p>No failed tasks.</p>"
    rows = []
    for task in failed[:MAX_FAILURES]:
        error = _bounded(task.error or "no reason recorded")
        cells = (task.tile_id, task.backend or NONE, task.job_id or NONE, str(task.attempts))
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                    + f'<td><pre>{html.escape(error)}</pre></td></tr>')
    more = (f"<p>… and {len(failed) - MAX_FAILURES:,} more failed tasks "
            "(<code>openeo-upscale export</code> lists them all).</p>") if len(failed) > MAX_FAILURES else ""
    return (f"<p>{len(failed):,} failed task(s).</p>"
            '<table class="failures"><thead><tr><th>tile</th><th>backend</th><th>job id</th>'
            f"<th>attempts</th><th>error</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{more}")


def _retried(jobs: Sequence[_Job]) -> list[list[_Job]]:
    """The jobs of each task that had more than one, by task id, first attempt first."""
    per_task: dict[int, list[_Job]] = {}
    for job in jobs:
        per_task.setdefault(job.task.id, []).append(job)
    return [attempts for _, attempts in sorted(per_task.items()) if len(attempts) > 1]


def _retries(jobs: Sequence[_Job]) -> str:
    retried = _retried(jobs)
    if not retried:
        return "<p>No task needed more than one job.</p>"
    rows = []
    for attempts in retried[:MAX_RETRIED]:
        task = attempts[0].task
        head = (f'<td rowspan="{len(attempts)}">{html.escape(task.tile_id)}<br>'
                f'<span class="muted">{html.escape(task.state.value)}, {len(attempts)} jobs</span></td>')
        for k, job in enumerate(attempts):
            record = job.record
            cells = (str(record.attempt), record.backend, record.job_id or NONE, _status(record),
                     _credits(record.costs))
            error = f"<pre>{html.escape(_bounded(record.error))}</pre>" if record.error else NONE
            rows.append(f'<tr class="{job.outcome.value}">' + (head if k == 0 else "")
                        + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + f"<td>{error}</td></tr>")
    more = (f"<p>… and {len(retried) - MAX_RETRIED:,} more retried tasks.</p>"
            if len(retried) > MAX_RETRIED else "")
    return (f"<p>{len(retried):,} task(s) needed more than one job.</p>"
            '<table class="failures retries"><thead><tr><th>tile</th><th>attempt</th><th>backend</th>'
            "<th>job id</th><th>status</th><th>credits</th><th>error</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{more}")


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 1.5rem 0.5rem 0; vertical-align: top; }
#summary table { display: inline-table; }
th, td { text-align: left; padding: 0.2rem 0.6rem; border-bottom: 1px solid #eee; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em; border: 1px solid #999;
          vertical-align: middle; }
table.failures { width: 100%; font-size: 0.9rem; }
table.failures pre { white-space: pre-wrap; word-break: break-word; margin: 0; max-height: 12rem;
                     overflow: auto; }
table.retries td[rowspan] { border-right: 1px solid #eee; }
.muted { color: #777; }
section.graph { margin: 1rem 0; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
<script type="text/javascript">{plotly}</script>
</head>
<body data-tasks="{tasks}">
<h1>{title}</h1>
<section id="summary"><h2>Summary</h2>{summary}</section>
<section id="forecast"><h2>Forecast</h2>{forecast}</section>
<h2>Map, timeline and histograms</h2>
{graphs}
<section id="failures"><h2>Failures</h2>{failures}</section>
<section id="retries"><h2>Retried tasks</h2>{retries}</section>
</body>
</html>
"""
