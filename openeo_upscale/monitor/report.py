"""A campaign report: one self-contained HTML file that can be mailed to a colleague.

The file holds the summary (tasks per state, credits, time span), the map of tiles, a timeline of
jobs per backend, histograms of job durations and credits, and the failed tasks with their errors.
plotly.js is inlined once in the head; nothing is loaded from anywhere else (no CDN, no web fonts,
no map tiles), so the report opens offline. Every value from the store is HTML-escaped.

Element ids, for tools that check the report renders: ``summary``, ``failures`` (sections) and the
plotly graph divs ``map``, ``timeline``, ``durations``, ``credits`` (each also has the
``plotly-graph-div`` class); the ``<body>`` gets ``data-tasks`` (the number of tasks).
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

from openeo_upscale.campaign.models import Task
from openeo_upscale.campaign.states import TASK_TERMINAL, TaskState
from openeo_upscale.monitor.colors import STATE_COLORS
from openeo_upscale.monitor.maps import NONE, duration_of, format_duration, map_figure

if TYPE_CHECKING:
    from openeo_upscale.campaign.store import Store

TIMELINE_MAX_BARS = 2_000
"""Above this many started jobs the timeline shows running jobs per backend over time instead of bars."""

MAX_FAILURES = 1_000
"""Failed tasks listed in the report's table; the rest are counted."""

MAX_ERROR_CHARS = 4_000
"""Characters of one error message kept in the table."""

GRAPH_IDS = ("map", "timeline", "durations", "credits")
"""The ids of the report's plotly graph divs, in page order."""

_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass(frozen=True)
class _Job:
    """One task's job on the timeline: from its start to its end (or to now while it runs)."""

    task: Task
    start: datetime
    end: datetime


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
    jobs = _jobs(tasks, now)

    figures = {
        "map": map_figure(tasks, html.escape(f"{name}: {len(tasks):,} tiles")),
        "timeline": _timeline(jobs),
        "durations": _histogram(tasks, "job duration (minutes)", _minutes),
        "credits": _histogram(tasks, "credits per job", lambda task: task.costs),
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
        summary=_summary(row, tasks, jobs, now),
        graphs=graphs,
        failures=_failures(tasks),
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


# the parts ------------------------------------------------------------------------------------------


def _jobs(tasks: Sequence[Task], now: datetime) -> list[_Job]:
    jobs = []
    for task in tasks:
        if task.started is None:
            continue
        end = task.finished or (task.updated if task.state in TASK_TERMINAL else now)
        jobs.append(_Job(task, task.started, max(end, task.started)))
    return sorted(jobs, key=lambda job: (job.task.backend or "", job.start, job.task.id))


def _summary(row: dict[str, object], tasks: Sequence[Task], jobs: Sequence[_Job], now: datetime) -> str:
    counts = dict.fromkeys(TaskState, 0)
    for task in tasks:
        counts[task.state] += 1
    credits = sum(task.costs or 0.0 for task in tasks)
    state_rows = "".join(
        f'<tr><td><span class="swatch" style="background:{STATE_COLORS[state]}"></span>{state.value}</td>'
        f'<td class="num">{count:,}</td></tr>'
        for state, count in counts.items() if count
    ) or '<tr><td colspan="2">no tasks</td></tr>'
    if jobs:
        first = min(job.start for job in jobs)
        last = max(job.end for job in jobs)
        span = f"{_when(first)} to {_when(last)} ({format_duration((last - first).total_seconds())})"
    else:
        span = "no job has started"
    backends = sorted({task.backend for task in tasks if task.backend})
    facts = [
        ("tasks", f"{len(tasks):,}"),
        ("credits", f"{credits:,.2f}"),
        ("jobs started", f"{len(jobs):,}"),
        ("time span", span),
        ("backends", ", ".join(backends) or NONE),
        ("campaign created", _when(row["created"])),
        ("report written", _when(now)),
    ]
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return (f'<table class="facts">{fact_rows}</table>'
            f'<table class="states"><thead><tr><th>state</th><th>tasks</th></tr></thead>'
            f"<tbody>{state_rows}</tbody></table>")


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else NONE


def _timeline(jobs: Sequence[_Job]) -> go.Figure:
    """One horizontal bar per job, grouped by backend and coloured by the task's state; or, for many
    jobs, the number of jobs running on each backend over time."""
    figure = go.Figure()
    figure.update_layout(template="plotly_white", title="jobs per backend", barmode="overlay",
                         margin={"l": 50, "r": 20, "t": 50, "b": 40}, legend={"title": {"text": "state"}})
    figure.update_xaxes(type="date", title="time (UTC)")
    if not jobs:
        _no_data(figure, "no job has started")
        figure.update_layout(height=300)
        return figure
    if len(jobs) > TIMELINE_MAX_BARS:
        return _concurrency(figure, jobs)
    by_state: dict[TaskState, list[_Job]] = {}
    for job in jobs:
        by_state.setdefault(job.task.state, []).append(job)
    for state in TaskState:
        chosen = by_state.get(state)
        if not chosen:
            continue
        figure.add_trace(go.Bar(
            name=state.value, orientation="h", marker={"color": STATE_COLORS[state]},
            y=[[job.task.backend or NONE for job in chosen], [job.task.tile_id for job in chosen]],
            base=[job.start.isoformat() for job in chosen],
            x=[(job.end - job.start).total_seconds() * 1000 for job in chosen],
            text=[_job_hover(job) for job in chosen], textposition="none",
            hovertemplate="%{text}<extra></extra>",
        ))
    order = [[job.task.backend or NONE for job in jobs], [job.task.tile_id for job in jobs]]
    figure.update_yaxes(type="multicategory", autorange="reversed", categoryorder="array",
                        categoryarray=order)
    figure.update_layout(height=min(160 + 14 * len(jobs), 4_000))
    return figure


def _concurrency(figure: go.Figure, jobs: Sequence[_Job]) -> go.Figure:
    """Jobs running per backend over time, as steps (for timelines with too many jobs for bars)."""
    changes: dict[str, list[tuple[datetime, int]]] = {}
    for job in jobs:
        steps = changes.setdefault(job.task.backend or NONE, [])
        steps.extend(((job.start, 1), (job.end, -1)))
    for backend, steps in sorted(changes.items()):
        steps.sort(key=lambda step: (step[0], step[1]))
        level, xs, ys = 0, [], []
        for at, delta in steps:
            level += delta
            xs.append(at.isoformat())
            ys.append(level)
        figure.add_trace(go.Scatter(name=html.escape(backend), x=xs, y=ys, mode="lines",
                                    line={"shape": "hv"}))
    figure.update_layout(title=f"jobs running per backend ({len(jobs):,} jobs)",
                         legend={"title": {"text": "backend"}}, height=400)
    figure.update_yaxes(title="running jobs", rangemode="tozero")
    return figure


def _job_hover(job: _Job) -> str:
    task = job.task
    return "<br>".join((
        f"<b>{html.escape(task.tile_id)}</b>",
        f"state: {task.state.value}",
        f"backend: {html.escape(task.backend or NONE)}",
        f"job: {html.escape(task.job_id or NONE)}",
        f"{_when(job.start)} to {_when(job.end)}",
        f"duration: {format_duration((job.end - job.start).total_seconds())}",
    ))


def _minutes(task: Task) -> float | None:
    seconds = duration_of(task)
    return None if seconds is None else seconds / 60


def _histogram(tasks: Sequence[Task], label: str, value: Callable[[Task], float | None]) -> go.Figure:
    """A histogram of ``value`` over the tasks that have one, stacked by state."""
    figure = go.Figure()
    figure.update_layout(template="plotly_white", title=label, barmode="stack", height=350,
                         margin={"l": 50, "r": 20, "t": 50, "b": 40}, legend={"title": {"text": "state"}})
    figure.update_xaxes(title=label)
    figure.update_yaxes(title="jobs")
    by_state: dict[TaskState, list[float]] = {}
    for task in tasks:
        found = value(task)
        if found is not None:
            by_state.setdefault(task.state, []).append(found)
    for state in TaskState:
        if by_state.get(state):
            figure.add_trace(go.Histogram(name=state.value, x=by_state[state],
                                          marker={"color": STATE_COLORS[state]}))
    if not by_state:
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
        error = task.error or "no reason recorded"
        if len(error) > MAX_ERROR_CHARS:
            error = error[:MAX_ERROR_CHARS] + " …"
        cells = (task.tile_id, task.backend or NONE, task.job_id or NONE, str(task.attempts))
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                    + f'<td><pre>{html.escape(error)}</pre></td></tr>')
    more = (f"<p>… and {len(failed) - MAX_FAILURES:,} more failed tasks "
            "(<code>openeo-upscale export</code> lists them all).</p>") if len(failed) > MAX_FAILURES else ""
    return (f"<p>{len(failed):,} failed task(s).</p>"
            '<table class="failures"><thead><tr><th>tile</th><th>backend</th><th>job id</th>'
            f"<th>attempts</th><th>error</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{more}")


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
<h2>Map, timeline and histograms</h2>
{graphs}
<section id="failures"><h2>Failures</h2>{failures}</section>
</body>
</html>
"""
