"""The tile map: one trace per state in the state's colour, hover per tile, and the live widget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from openeo_upscale.campaign import TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.monitor import geography, maps
from openeo_upscale.monitor.colors import STATE_COLORS
from tests.monitor.builders import EVIL, build_campaign, square

S = TaskState


def _tiles(figure: Any) -> list[Any]:
    """The figure's traces of tiles, one per state (the geography's traces left out)."""
    return [trace for trace in figure.data if not geography.is_geography(trace)]


@pytest.fixture
def campaign(tmp_path: Path) -> Iterator[tuple[Store, int]]:
    store, campaign_id = build_campaign(tmp_path)
    try:
        yield store, campaign_id
    finally:
        store.close()


def test_one_trace_per_present_state_in_its_colour(campaign: tuple[Store, int]) -> None:
    store, campaign_id = campaign
    figure = maps.plot_map(store, campaign_id)
    present = {task.state for task in store.all_tasks(campaign_id)}
    assert [trace.name for trace in _tiles(figure)] == [s.value for s in S if s in present]
    for trace in _tiles(figure):
        assert trace.fillcolor == STATE_COLORS[S(trace.name)]
        assert trace.fill == "toself"
        assert trace.showlegend
    assert figure.layout.title.text == "demo: 12 tiles"
    assert figure.layout.yaxis.scaleanchor == "x"


def test_the_geography_near_the_tiles_is_drawn_beneath_them(campaign: tuple[Store, int]) -> None:
    """Coastline, borders, rivers and lakes come first, as thin lines without hover or legend entry,
    beneath the tiles; the view is fixed around the tiles (the geography reaches further)."""
    store, campaign_id = campaign
    figure = maps.plot_map(store, campaign_id)
    lines = [trace for trace in figure.data if geography.is_geography(trace)]
    assert [trace.name for trace in lines] == list(geography.LAYERS)
    assert figure.data[:len(lines)] == tuple(lines)
    for trace in lines:
        assert trace.mode == "lines" and trace.hoverinfo == "skip" and trace.showlegend is False
        assert trace.zorder < min(tile.zorder or 0 for tile in _tiles(figure))
    # the tiles span 4.0-4.2 E, 51.0-51.15 N: the Belgian-Dutch border and the coast are near
    by_name = {trace.name: trace for trace in lines}
    assert any(x is not None for x in by_name["borders"].x)
    assert any(x is not None for x in by_name["coastline"].x)
    west, east = figure.layout.xaxis.range
    south, north = figure.layout.yaxis.range
    assert west < 4.0 and east > 4.2 and south < 51.0 and north > 51.15
    assert east - west >= 1.0  # a small campaign is shown with the land around it
    xs = [x for trace in lines for x in trace.x if x is not None]
    margin = max(geography.MARGIN, geography.MARGIN_FRACTION * max(east - west, north - south))
    assert west - margin <= min(xs) < west and east < max(xs) <= east + margin  # clipped near the view


def test_hover_names_tile_state_backend_job_attempts_duration_credits(campaign: tuple[Store, int]) -> None:
    store, campaign_id = campaign
    figure = maps.plot_map(store, campaign_id, title="mine")
    done = next(trace for trace in _tiles(figure) if trace.name == "done")
    texts = {text for text in done.text if text}
    hover = next(text for text in texts if "t005" in text)
    for part in ("<b>t005</b>", "state: done", "backend: alpha", "job: j-t005", "attempts: 1",
                 "duration: 15m 00s", "credits: 6.50"):
        assert part in hover
    # every coordinate of a tile carries its text; gaps carry none
    assert all((x is None) == (t is None) for x, t in zip(done.x, done.text, strict=True))
    assert figure.layout.title.text == "mine"
    pending = next(trace for trace in _tiles(figure) if trace.name == "pending")
    unstarted = next(t for t in pending.text if t)
    assert "job: -" in unstarted and "duration: -" in unstarted


def test_hover_escapes_tile_ids(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        campaign_id = store.create_campaign("x", config={"uid": "u"},
                                            tasks=[{"tile_id": EVIL, "geometry": square(0, 0)}])
        figure = maps.plot_map(store, campaign_id)
    assert EVIL not in _tiles(figure)[0].text[0]
    assert "&lt;script&gt;" in _tiles(figure)[0].text[0]


def test_many_tiles_become_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maps, "MAX_POLYGONS", 5)
    store, campaign_id = build_campaign(tmp_path)
    with store:
        figure = maps.plot_map(store, campaign_id)
    assert {trace.mode for trace in _tiles(figure)} == {"markers"}
    assert sum(len(trace.x) for trace in _tiles(figure)) == 12
    assert all(trace.marker.color == STATE_COLORS[S(trace.name)] for trace in _tiles(figure))
    assert [trace.name for trace in figure.data if geography.is_geography(trace)] == list(geography.LAYERS)


def test_empty_campaign_and_tasks_without_geometry(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        empty = store.create_campaign("empty", config={"uid": "u"}, tasks=[])
        bare = store.create_campaign("bare", config={"uid": "v"}, tasks=[{"tile_id": "a"}])
        assert maps.plot_map(store, empty).data == ()
        figure = maps.plot_map(store, bare)
    assert figure.data == ()
    assert "without a geometry" in figure.layout.annotations[0].text


def test_format_duration() -> None:
    assert maps.format_duration(None) == "-"
    assert maps.format_duration(12.4) == "12s"
    assert maps.format_duration(245) == "4m 05s"
    assert maps.format_duration(3723) == "1h 02m 03s"


def _without_anywidget(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_anywidget(name: str, *args: object, **kwargs: object) -> object:
        if name == "anywidget":
            raise ImportError("No module named 'anywidget'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_anywidget)


def test_map_without_anywidget_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_anywidget(monkeypatch)
    with pytest.raises(ImportError, match="pip install anywidget") as caught:
        maps.live_map(object())  # type: ignore[arg-type]
    assert isinstance(caught.value, maps.WidgetUnavailableError)


def test_the_maps_take_a_campaign(campaign: tuple[Store, int], monkeypatch: pytest.MonkeyPatch) -> None:
    from openeo_upscale.campaign import Campaign
    from openeo_upscale.monitor import live_map, plot_map

    store, campaign_id = campaign
    opened = Campaign(store, campaign_id)
    figure = plot_map(opened, title="t")
    assert figure.layout.title.text == "t" and len(_tiles(figure)) == 5
    _without_anywidget(monkeypatch)
    with pytest.raises(maps.WidgetUnavailableError, match="pip install anywidget"):
        live_map(opened, interval=1.0)


@dataclass
class _FakeCampaign:
    store: Store
    id: int
    running: bool = True


def test_follow_updates_in_place_until_the_campaign_stops(campaign: tuple[Store, int]) -> None:
    import plotly.graph_objects as go

    store, campaign_id = campaign
    figure = go.Figure()
    fake = _FakeCampaign(store, campaign_id)
    maps.refresh(figure, store, campaign_id)
    assert [trace.name for trace in figure.data] == [*geography.LAYERS, *(s.value for s in S)]
    traces = list(figure.data)
    queued = next(t for t in store.all_tasks(campaign_id) if t.state is S.QUEUED)
    store.transition(queued.id, S.QUEUED, S.RUNNING, actor="test")
    fake.running = False
    assert maps.follow(figure, fake, 0.0, threading.Event()) == 1
    assert list(figure.data) == traces  # the same trace objects, updated in place
    running = _tiles(figure)[list(S).index(S.RUNNING)]
    assert any(text and queued.tile_id in text for text in running.text)
    canceled = _tiles(figure)[list(S).index(S.CANCELED)]
    assert not canceled.showlegend and not canceled.x


def test_follow_stops_on_the_stop_event(campaign: tuple[Store, int]) -> None:
    import plotly.graph_objects as go

    store, campaign_id = campaign
    stop = threading.Event()
    stop.set()
    assert maps.follow(go.Figure(), _FakeCampaign(store, campaign_id), 0.0, stop) == 0


# the live widget (plotly's FigureWidget, built on anywidget), driven without a Jupyter frontend ----------


def _states_shown(widget: Any) -> dict[str, int]:
    return {trace.meta["state"]: trace.meta["tiles"] for trace in _tiles(widget) if trace.meta["tiles"]}


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _new_live_thread(before: set[threading.Thread]) -> threading.Thread:
    """The live map's refresh thread, started since ``before`` was taken."""
    (thread,) = [t for t in set(threading.enumerate()) - before if t.name.startswith("live-map-")]
    return thread


def test_live_map_is_a_widget_updated_in_place_until_the_campaign_stops(campaign: tuple[Store, int]) -> None:
    import plotly.graph_objects as go

    store, campaign_id = campaign
    fake = _FakeCampaign(store, campaign_id)
    stop = threading.Event()
    before = set(threading.enumerate())
    try:
        widget = maps.live_map(fake, 0.01, stop=stop)
        thread = _new_live_thread(before)
        assert isinstance(widget, go.FigureWidget)
        assert [trace.name for trace in widget.data] == [*geography.LAYERS, *(s.value for s in S)]
        traces = list(widget.data)
        assert _states_shown(widget) == {"pending": 2, "queued": 2, "running": 2, "done": 3, "failed": 3}

        queued = next(t for t in store.all_tasks(campaign_id) if t.state is S.QUEUED)
        store.transition(queued.id, S.QUEUED, S.RUNNING, actor="test")
        _until(lambda: _states_shown(widget).get("running") == 3)
        store.transition(queued.id, S.RUNNING, S.FAILED, actor="test", error="boom")
        _until(lambda: _states_shown(widget).get("failed") == 4)
        assert list(widget.data) == traces  # the same traces, updated in place

        # the same colours and hover as the static figure
        static = {trace.name: trace for trace in _tiles(maps.plot_map(store, campaign_id))}
        for trace in _tiles(widget):
            assert trace.fillcolor == STATE_COLORS[S(trace.name)]
            if trace.name in static:
                assert trace.text == static[trace.name].text

        fake.running = False
        thread.join(5.0)
        assert not thread.is_alive()
    finally:
        stop.set()


def test_campaign_map_follows_a_run_on_the_local_backend(tmp_path: Path) -> None:
    """A tiny campaign on the local backend: the widget passes through the job states to all done,
    and its thread ends with the campaign's run."""
    import openeo
    import plotly.graph_objects as go

    from openeo_upscale.backend import BackendConfig, LocalBackend
    from openeo_upscale.campaign import Campaign, Polling, Udp
    from openeo_upscale.grid import tiles
    from openeo_upscale.udp import UDP_DIR
    from tests.conftest import ANTWERP_BBOX, FAST

    with LocalBackend(BackendConfig(state_dir=tmp_path / "backend", simulation=FAST)) as backend:
        udp = Udp.from_file(UDP_DIR / "ndvi_max.json", namespace=f"{backend.api_url}/udp/ndvi_max.json")
        with Campaign.create(tmp_path / "store.db", tiles(ANTWERP_BBOX, 5000).head(3), udp,
                             defaults={"temporal_extent": ["2023-05-01", "2023-06-01"]},
                             output_dir=tmp_path / "out", polling=Polling(min_interval=0.1, max_interval=0.5),
                             ) as campaign:
            campaign.add_backend("local", openeo.connect(backend.url).authenticate_basic("demo", "demo"),
                                 parallel_jobs=2)
            campaign.start()
            before = set(threading.enumerate())
            widget = maps.live_map(campaign, interval=0.02)
            thread = _new_live_thread(before)
            assert isinstance(widget, go.FigureWidget)
            seen: set[str] = set()
            while campaign.running:
                seen |= set(_states_shown(widget))
                time.sleep(0.01)
            assert campaign.wait()
            thread.join(5.0)
            assert not thread.is_alive()
            assert _states_shown(widget) == {"done": 3}
            assert seen & {"queued", "running"}, seen
            assert widget.layout.title.text == "campaign: 3 tiles"
