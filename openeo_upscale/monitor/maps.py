"""The map of a campaign's tiles coloured by state: a static plotly figure and a live notebook widget.

Tiles are drawn in longitude/latitude with `go.Scatter` (no basemap, no map tiles), so a figure
works offline and inside a self-contained report. Beneath them, the coastlines, country borders,
rivers and lakes near the tiles come from the package's Natural Earth extract (`geography`): four
traces named after their layer, without hover or legend entry. Each state is one trace, named after
the state, so the legend reads as states and a click on it hides or shows one state.

A trace carries every tile of its state: the exterior rings of the polygons separated by gaps, and
each tile's centre as an isolated point. Every point of a tile (ring corners and centre) carries
the tile's hover text, so hovering over a tile's middle shows its id, state, backend, job,
attempts, duration and credits. Above `MAX_POLYGONS` tiles only the centres are drawn, as markers.

A tile that ran out of memory and was split (state ``split``) is drawn beneath the other states, so
its quadrants, tasks of their own, show over it; where a quadrant was left out (outside the area of
interest) the split tile's tint shows, never a gap.
"""

from __future__ import annotations

import html
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import plotly.graph_objects as go
import shapely

from openeo_upscale.campaign.models import Task
from openeo_upscale.campaign.states import TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.errors import UpscaleError
from openeo_upscale.monitor import geography
from openeo_upscale.monitor.colors import STATE_COLORS
from openeo_upscale.monitor.formatting import NONE, format_duration

MAX_POLYGONS = 5_000
"""Above this many tiles the map draws tile centres as markers instead of polygons."""

LIVE_INTERVAL = 5.0
"""Seconds between two refreshes of the live map."""

MAP_HEIGHT = 600
"""Height of the map figure in pixels."""

MAP_ASPECT = 1.6
"""Width over height of the area the map shows at first (what fits a notebook or the report)."""

SPLIT_ZORDER = -1
"""Drawing order of the split tiles' trace: below the others (at 0), under their quadrants."""

_HOVER_TEMPLATE = "%{text}<extra></extra>"


class WidgetUnavailableError(UpscaleError, ImportError):
    """The live notebook map needs a Jupyter widget package that is not installed."""


class LiveCampaign(Protocol):
    """What the live map needs of a campaign: its store and id, and whether it is still running."""

    @property
    def store(self) -> Store: ...

    @property
    def id(self) -> int: ...

    @property
    def running(self) -> bool: ...


def duration_of(task: Task) -> float | None:
    """Seconds from the job's start to its end, or None while either is unknown."""
    if task.started is None or task.finished is None:
        return None
    return (task.finished - task.started).total_seconds()


def hover_text(task: Task) -> str:
    """The tile's hover lines (HTML-escaped, since plotly renders a subset of HTML in hover labels)."""
    credits = f"{task.costs:,.2f}" if task.costs is not None else NONE
    lines = [
        f"<b>{_esc(task.tile_id)}</b>",
        f"state: {_esc(task.state.value)}",
        f"backend: {_esc(task.backend)}",
        f"job: {_esc(task.job_id)}",
        f"attempts: {task.attempts}",
        f"duration: {format_duration(duration_of(task))}",
        f"credits: {credits}",
    ]
    return "<br>".join(lines)


def _esc(value: object) -> str:
    return NONE if value is None or value == "" else html.escape(str(value))


@dataclass
class _Layer:
    """The coordinates and hover texts of one state's trace."""

    x: list[float | None] = field(default_factory=list)
    y: list[float | None] = field(default_factory=list)
    text: list[str | None] = field(default_factory=list)
    tiles: int = 0


def _layers(tasks: Iterable[Task], *, polygons: bool) -> tuple[dict[TaskState, _Layer], int]:
    """Per state, the trace data of its tiles; and how many tasks had no usable geometry."""
    layers: dict[TaskState, _Layer] = {}
    missing = 0
    for task in tasks:
        geometry = _geometry(task.geometry)
        if geometry is None:
            missing += 1
            continue
        layer = layers.setdefault(task.state, _Layer())
        layer.tiles += 1
        text = hover_text(task)
        centre = geometry.centroid if polygons else geometry.envelope.centroid
        if polygons:
            for ring in _rings(geometry):
                for lon, lat in ring:
                    layer.x.append(lon)
                    layer.y.append(lat)
                    layer.text.append(text)
                layer.x.append(None)
                layer.y.append(None)
                layer.text.append(None)
            # The centre as a lone point between gaps: hoverable, but no area for fill="toself".
            layer.x.extend((centre.x, None))
            layer.y.extend((centre.y, None))
            layer.text.extend((text, None))
        else:
            layer.x.append(centre.x)
            layer.y.append(centre.y)
            layer.text.append(text)
    return layers, missing


def _geometry(wkt: str | None) -> Any:
    if not wkt:
        return None
    try:
        geometry = shapely.from_wkt(wkt)
    except shapely.errors.GEOSException:
        return None
    return None if geometry is None or geometry.is_empty else geometry


def _rings(geometry: Any) -> list[list[tuple[float, float]]]:
    """The exterior rings of a polygon or multipolygon (holes are too small to matter on a tile map)."""
    parts = getattr(geometry, "geoms", [geometry])
    rings = []
    for part in parts:
        exterior = getattr(part, "exterior", None)
        if exterior is not None:
            rings.append([(float(x), float(y)) for x, y in exterior.coords])
    return rings


def _trace(state: TaskState, layer: _Layer, *, polygons: bool) -> go.Scatter:
    colour = STATE_COLORS[state]
    common: dict[str, Any] = {
        "name": str(state.value), "legendgroup": str(state.value), "x": layer.x, "y": layer.y,
        "text": layer.text, "hovertemplate": _HOVER_TEMPLATE, "showlegend": layer.tiles > 0,
        "meta": {"state": state.value, "tiles": layer.tiles},
    }
    if state is TaskState.SPLIT:
        # Beneath every other state: a split tile's quadrants cover it, and they are what runs.
        common["zorder"] = SPLIT_ZORDER
    if polygons:
        return go.Scatter(mode="lines", fill="toself", fillcolor=colour, hoveron="points",
                          line={"color": "white", "width": 0.5}, **common)
    return go.Scatter(mode="markers", marker={"color": colour, "size": 6, "line": {"width": 0}}, **common)


def _fill(figure: go.Figure, tasks: list[Task], *, all_states: bool) -> None:
    """Replace the figure's traces by one per state (every state when ``all_states``) and fit the axes."""
    polygons = len(tasks) <= MAX_POLYGONS
    layers, missing = _layers(tasks, polygons=polygons)
    states = list(TaskState) if all_states else [s for s in TaskState if s in layers]
    figure.data = []
    xs = [v for layer in layers.values() for v in layer.x if v is not None]
    ys = [v for layer in layers.values() for v in layer.y if v is not None]
    if xs:
        view = geography.view_box((min(xs), min(ys), max(xs), max(ys)), aspect=MAP_ASPECT)
        geography.add_traces(figure, view)
        # Fixed ranges: the geography reaches beyond the view and would widen an autorange. To keep
        # the tiles square both axes give up domain, never range (``constrain="domain"``).
        figure.update_xaxes(range=[view[0], view[2]])
        figure.update_yaxes(range=[view[1], view[3]])
    figure.add_traces([_trace(s, layers.get(s, _Layer()), polygons=polygons) for s in states])
    mid_lat = (min(ys) + max(ys)) / 2 if ys else 0.0
    # One degree of longitude is cos(latitude) as long as one of latitude: keep the tiles square.
    figure.update_yaxes(scaleanchor="x", scaleratio=1 / max(math.cos(math.radians(mid_lat)), 0.05))
    notes = []
    if not tasks:
        notes.append("no tiles in this campaign")
    if missing:
        notes.append(f"{missing:,} task(s) without a geometry are not shown")
    if not polygons:
        notes.append(f"{len(tasks):,} tiles: centres shown as points")
    note = go.layout.Annotation(text=" · ".join(notes), showarrow=False, xref="paper", yref="paper",
                                x=0, y=-0.08, xanchor="left")
    figure.layout.annotations = [note] if notes else []


def plot_map(source: Store | LiveCampaign, campaign_id: int | None = None, *,
             title: str | None = None) -> go.Figure:
    """A static map of a campaign's tiles coloured by state, one trace per state present:
    ``plot_map(campaign)``, or ``plot_map(store, campaign_id)`` for a campaign in a store.

    Hover shows tile id, state, backend, job id, attempts, duration and credits; coastlines,
    borders, rivers and lakes are drawn beneath the tiles. Works offline.
    """
    if isinstance(source, Store):
        if campaign_id is None:
            raise TypeError("plot_map(store, campaign_id): the campaign id is missing")
        store = source
    else:
        store, campaign_id = source.store, source.id if campaign_id is None else campaign_id
    tasks = list(store.all_tasks(campaign_id))
    return map_figure(tasks, title if title is not None else _default_title(store, campaign_id, len(tasks)))


def map_figure(tasks: list[Task], title: str) -> go.Figure:
    """The map of these tasks, one trace per state present (``title`` is shown as given: escape it)."""
    figure = _empty_map(title)
    _fill(figure, tasks, all_states=False)
    return figure


def _default_title(store: Store, campaign_id: int, tiles: int) -> str:
    name = store.campaign(campaign_id)["name"]
    return f"{html.escape(str(name))}: {tiles:,} tiles"


def _empty_map(title: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title=title, template="plotly_white", height=MAP_HEIGHT, hovermode="closest",
        legend={"title": {"text": "state"}, "itemsizing": "constant"},
        margin={"l": 50, "r": 20, "t": 50, "b": 50},
    )
    figure.update_xaxes(title="longitude", showgrid=False, zeroline=False, constrain="domain")
    figure.update_yaxes(title="latitude", showgrid=False, zeroline=False, constrain="domain")
    return figure


# live notebook map ------------------------------------------------------------------------------------


def _widget_class() -> type[go.FigureWidget]:
    """`go.FigureWidget`, or `WidgetUnavailableError` when its Jupyter support is not installed."""
    try:
        import anywidget  # noqa: F401  (plotly's FigureWidget is built on it)
    except ImportError as exc:
        raise WidgetUnavailableError(
            "the live map is a Jupyter widget and needs the 'anywidget' package: run "
            "`pip install anywidget` (or use plot_map(campaign) for a static map)") from exc
    return go.FigureWidget


def live_map(campaign: LiveCampaign, interval: float = LIVE_INTERVAL, *,
             stop: threading.Event | None = None) -> go.FigureWidget:
    """A notebook widget of the campaign's map, updated in place every ``interval`` seconds from a
    background thread until the campaign's background run ends (or ``stop`` is set).

    Call it after `Campaign.start`: a campaign that is not running gets one refresh and no more.
    Raises `WidgetUnavailableError` (an `ImportError`) without the ``anywidget`` package.
    """
    widget_class = _widget_class()
    tasks = list(campaign.store.all_tasks(campaign.id))
    figure = _empty_map(_default_title(campaign.store, campaign.id, len(tasks)))
    _fill(figure, tasks, all_states=True)
    widget = widget_class(figure)
    thread = threading.Thread(target=follow, args=(widget, campaign, interval, stop or threading.Event()),
                              name=f"live-map-{campaign.id}", daemon=True)
    thread.start()
    return widget


def refresh(figure: go.Figure, store: Store, campaign_id: int) -> None:
    """Redraw the figure's tiles from the store in place (traces for every state, empty ones hidden;
    the geography beneath them stays)."""
    tasks = list(store.all_tasks(campaign_id))
    polygons = len(tasks) <= MAX_POLYGONS
    tiles = [trace for trace in figure.data if not geography.is_geography(trace)]
    if len(tiles) != len(TaskState) or (tiles[0].mode == "lines") != polygons:
        # The geography is drawn anew only here: tiles never move, tasks added later (a split
        # tile's quadrants) lie within the tiles already drawn.
        with figure.batch_update():
            _fill(figure, tasks, all_states=True)
            figure.layout.title.text = _default_title(store, campaign_id, len(tasks))
        return
    layers, _ = _layers(tasks, polygons=polygons)
    with figure.batch_update():
        for state, trace in zip(TaskState, tiles, strict=True):
            fresh = _trace(state, layers.get(state, _Layer()), polygons=polygons)
            trace.update(x=fresh.x, y=fresh.y, text=fresh.text, showlegend=fresh.showlegend, meta=fresh.meta)
        figure.layout.title.text = _default_title(store, campaign_id, len(tasks))


def follow(figure: go.Figure, campaign: LiveCampaign, interval: float, stop: threading.Event) -> int:
    """Refresh ``figure`` every ``interval`` seconds until the campaign stops running or ``stop`` is
    set; one last refresh shows the final states. Returns the number of refreshes."""
    refreshes = 0
    while not stop.wait(interval):
        running = campaign.running
        refresh(figure, campaign.store, campaign.id)
        refreshes += 1
        if not running:
            break
    return refreshes

