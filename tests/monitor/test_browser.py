"""The dashboard and the report in headless Chromium.

A campaign runs in another process (`openeo-upscale run`) against the local backend while the
dashboard, also in a process of its own, serves the same store; the page must show a tile turn
`done` without reloading, and load nothing from outside 127.0.0.1. The dashboard's and the
report's maps draw the package's geography beneath the tiles; with ``tiles_url`` the dashboard
draws an XYZ basemap, here from a tile server on loopback.
"""

from __future__ import annotations

import math
import os
import re
import struct
import subprocess
import sys
import threading
import warnings
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from openeo_upscale.backend import LocalBackend
from openeo_upscale.campaign import Store
from tests.conftest import ANTWERP_BBOX
from tests.helpers import PASSWORD_ENV, USER_ENV, campaign_toml, free_port, wait_until
from tests.monitor.browser import requested_hosts, screenshot

ROOT = Path(__file__).resolve().parents[2]
BBOX = [ANTWERP_BBOX[k] for k in ("west", "south", "east", "north")]


def start(*args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, USER_ENV: "demo", PASSWORD_ENV: "demo"}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "openeo_upscale.cli", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
def running_campaign(tmp_path: Path, backend: LocalBackend, udp_dir: Path) -> Iterator[Path]:
    """`openeo-upscale run` in a process of its own; yields the store's path once it exists."""
    toml = campaign_toml(tmp_path, backend.url, udp_dir)  # the CLI tests' campaign: same TOML, same secrets
    process = start("run", str(toml), "--quiet", log=tmp_path / "run.log")
    store = tmp_path / "campaign.sqlite"
    try:
        def created() -> bool:
            if not store.exists():
                return False
            with Store.open(store) as opened:
                return bool(opened.campaigns())

        wait_until(created, "the campaign in the store", timeout=60)
        yield store
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def dashboard(running_campaign: Path, tmp_path: Path) -> Iterator[str]:
    """`openeo-upscale dashboard` in a process of its own; yields its URL once it answers."""
    port = free_port()
    process = start("dashboard", str(running_campaign), "--port", str(port), log=tmp_path / "dashboard.log")
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(answers, "the dashboard", timeout=30)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_dashboard_shows_a_tile_turning_done_live(chromium: object, dashboard: str) -> None:
    chromium.get(dashboard)  # type: ignore[attr-defined]
    done = wait_until(
        lambda: int(chromium.execute_script("return Number(document.body.dataset.done || 0)")),  # type: ignore[attr-defined]
        "a tile to turn done on the map", timeout=90)
    assert done >= 1
    screenshot(chromium, "dashboard")
    assert chromium.find_element("id", "map").is_displayed()  # type: ignore[attr-defined]


def test_dashboard_loads_nothing_from_outside(chromium: object, dashboard: str) -> None:
    chromium.get(dashboard)  # type: ignore[attr-defined]
    wait_until(lambda: chromium.execute_script(  # type: ignore[attr-defined]
        "return document.readyState === 'complete' && typeof Plotly !== 'undefined'"), "the page", timeout=30)
    hosts = requested_hosts(chromium)
    assert hosts == {"127.0.0.1"}, hosts


def test_report_renders_its_map_and_charts_offline(chromium: object, tmp_path: Path) -> None:
    """A report of a small campaign, opened from disk: the map and the four charts draw, and the
    page asks for nothing over the network."""
    from openeo_upscale.monitor.report import write_report
    from tests.monitor.builders import build_campaign

    store, campaign_id = build_campaign(tmp_path)
    with store:
        path = write_report(store, campaign_id, tmp_path / "report.html")
    chromium.get(path.as_uri())  # type: ignore[attr-defined]
    drawn = """return ['map', 'timeline', 'durations', 'credits'].every(id => {
        const div = document.getElementById(id);
        return div && div._fullLayout && div.querySelector('svg.main-svg');
    })"""
    wait_until(lambda: chromium.execute_script(drawn), "the report's charts", timeout=30)  # type: ignore[attr-defined]
    traces = chromium.execute_script(  # type: ignore[attr-defined]
        "return document.querySelectorAll('#map .scatterlayer .trace').length")
    assert traces >= 2
    screenshot(chromium, "report")
    assert requested_hosts(chromium) == set()


def test_a_failed_tasks_attempts_unfold_in_the_failures_table(chromium: object, tmp_path: Path) -> None:
    """A failed task with two jobs gets a button that lists both attempts below its row, which stays
    open across polls; a task with one job gets none. The backends table counts the ledger's jobs."""
    from openeo_upscale.campaign import TaskState
    from openeo_upscale.monitor.dashboard import create_app
    from tests.monitor.builders import launch, run_job, serving

    S = TaskState
    path = tmp_path / "store.sqlite"
    with Store.open(path) as store:
        rows = [{"tile_id": t, "geometry": f"POLYGON (({i} 0, {i + 1} 0, {i + 1} 1, {i} 1, {i} 0))"}
                for i, t in enumerate("ab")]
        cid = store.create_campaign("demo", tasks=rows)
        retried, once = (task.id for task in store.all_tasks(cid))
        run_job(store, cid, retried, "alpha", 1, job_id="j-1", end=S.PENDING, job_status="error", costs=0.5,
                error="lost the node")
        run_job(store, cid, retried, "beta", 2, job_id="j-2", end=S.FAILED, job_status="error", costs=0.25,
                error="out of memory")
        launch(store, cid, once, "alpha", 1)
        store.transition(once, S.CREATING, S.FAILED, actor="test", error="refused")

    script = chromium.execute_script  # type: ignore[attr-defined]
    attempts = """return [...document.querySelectorAll('#failures tr.attempt')]
        .map(row => [...row.cells].map(cell => cell.textContent))"""
    button = f"document.querySelector('#failures tr[data-task=\"{retried}\"] button.jobs')"
    with serving(create_app(str(path))) as url:
        chromium.get(url + "/")  # type: ignore[attr-defined]
        wait_until(lambda: script("return Number(document.body.dataset.updates || 0)"), "the first update",
                   timeout=30)
        assert script(f"return document.querySelector('#failures tr[data-task=\"{once}\"] button')") is None
        assert script(f"return {button}.textContent") == "2 ▸"
        ledger = """return [...document.querySelectorAll('#backends tr[data-backend]')]
            .map(row => [row.dataset.backend, ...[...row.cells].slice(-2).map(cell => cell.textContent)])"""
        assert script(ledger) == [["alpha", "2", "0.5"], ["beta", "1", "0.25"]]

        script(f"{button}.click()")
        shown = wait_until(lambda: script(attempts), "the attempts of the retried task", timeout=30)
        unknown = "\N{EN DASH}"  # what the page shows for a value not known (no duration: never started)
        assert shown == [["1", "alpha", "j-1", "error", unknown, "0.5", "lost the node"],
                         ["2", "beta", "j-2", "error", unknown, "0.25", "out of memory"]]
        assert script(f"return {button}.getAttribute('aria-expanded')") == "true"
        updates = "return Number(document.body.dataset.updates)"
        polls = int(script(updates))
        wait_until(lambda: int(script(updates)) > polls, "another poll", timeout=30)
        assert script(attempts) == shown

        script(f"{button}.click()")
        assert script("return document.querySelectorAll('#failures tr.attempts').length") == 0


def test_tasks_added_while_the_dashboard_is_open_appear_on_its_map(chromium: object, tmp_path: Path) -> None:
    """A split tile's quadrants are tasks added mid-run: the map takes their outlines in at the next
    poll, without a reload."""
    from openeo_upscale.monitor.dashboard import create_app
    from tests.monitor.builders import build_campaign, serving, square

    store, campaign_id = build_campaign(tmp_path)
    script = chromium.execute_script  # type: ignore[attr-defined]
    with store, serving(create_app(store)) as url:
        chromium.get(url + "/")  # type: ignore[attr-defined]
        wait_until(lambda: script("return Number(document.body.dataset.updates || 0)"), "the first update",
                   timeout=30)
        assert script("return view.ids.length") == 12
        added = [{"tile_id": f"added{i}", "geometry": square(5 + i, 0)} for i in range(2)]
        store.add_tasks(campaign_id, added)
        wait_until(lambda: script("return view.ids.length") == 14, "the added tiles on the map", timeout=30)
        assert script("return view.tileIds.slice(-2)") == ["added0", "added1"]


# geography and basemap -------------------------------------------------------------------------------

GEOGRAPHY_TRACES = """const div = document.getElementById('map');
    if (!div || !div.data) return null;
    return div.data.map((t, k) => [k, t.name, (t.meta || {}).geography || null,
                                   (t.x || []).filter(v => v !== null).length]);"""
"""The map's traces as [index, name, geography layer or null, points] (from the graph div's data)."""


def _geography_of(script: Any) -> list[list[Any]]:
    traces = script(GEOGRAPHY_TRACES) or []
    return [trace for trace in traces if trace[2]]


def _assert_geography_drawn(script: Any) -> None:
    """The four geography traces come first (drawn beneath the tiles) and the border and coast near
    the tiles (4.0-4.2 E, 51.0-51.15 N: Flanders) are lines in the map's SVG."""
    from openeo_upscale.monitor.geography import LAYERS

    found = _geography_of(script)
    assert [(index, name) for index, name, _, _ in found] == list(enumerate(LAYERS)), found
    points = {name: n for _, name, _, n in found}
    assert points["borders"] > 10 and points["coastline"] > 10, points
    drawn = script("""return [...document.querySelectorAll('#map .scatterlayer .trace')].slice(0, 2)
        .map(trace => trace.querySelector('path.js-line'))
        .map(line => line ? line.getAttribute('d').length : 0)""")
    assert all(length > 20 for length in drawn), drawn


def test_dashboard_map_draws_the_geography_from_its_own_server(chromium: object, tmp_path: Path) -> None:
    """Without a basemap the map has the coastline, borders, rivers and lakes beneath the tiles,
    fetched from the app's /api/geography; the view is fixed around the tiles; nothing came from
    outside 127.0.0.1."""
    from openeo_upscale.monitor.dashboard import create_app
    from tests.monitor.builders import build_campaign, serving

    store, _ = build_campaign(tmp_path)
    script = chromium.execute_script  # type: ignore[attr-defined]
    updates = "return Number(document.body.dataset.updates || 0)"
    with store, serving(create_app(store)) as url:
        chromium.get(url + "/")  # type: ignore[attr-defined]
        wait_until(lambda: script(updates) and _geography_of(script), "the map with its geography",
                   timeout=30)
        _assert_geography_drawn(script)
        fetched = script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert any(name.startswith(url + "/api/geography?bbox=") for name in fetched), fetched
        west, east = script("return document.getElementById('map').layout.xaxis.range")
        south, north = script("return document.getElementById('map').layout.yaxis.range")
        assert west < 4.0 and east > 4.2 and south < 51.0 and north > 51.15
        screenshot(chromium, "dashboard-geography")
        assert requested_hosts(chromium) == {"127.0.0.1"}


def test_report_map_draws_the_geography_offline(chromium: object, tmp_path: Path) -> None:
    """The report opened from disk: its map has the geography traces, inlined, and the page asks for
    nothing over the network."""
    from openeo_upscale.monitor.report import write_report
    from tests.monitor.builders import build_campaign

    store, campaign_id = build_campaign(tmp_path)
    with store:
        path = write_report(store, campaign_id, tmp_path / "report.html")
    chromium.get(path.as_uri())  # type: ignore[attr-defined]
    script = chromium.execute_script  # type: ignore[attr-defined]
    drawn = "return !!document.querySelector('#map svg.main-svg')"
    wait_until(lambda: script(drawn) and _geography_of(script), "the report's map with its geography",
               timeout=30)
    _assert_geography_drawn(script)
    screenshot(chromium, "report-geography")
    assert requested_hosts(chromium) == set()


BASEMAP_RGB = (255, 0, 255)
"""The colour of every basemap tile the test's tile server sends: magenta, nowhere else on the page."""


def _png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A PNG of one colour, written by hand (8-bit RGB, one unfiltered scanline after another)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = (b"\x00" + bytes(rgb) * size) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


TileServer = tuple[str, list[tuple[int, int, int]]]
"""A tile server's URL template, and the tiles (z, x, y) it was asked for."""


@pytest.fixture
def tile_server() -> Iterator[TileServer]:
    """An XYZ tile server on loopback sending the same PNG for any /{z}/{x}/{y}.png; yields its URL
    template and the list of tiles asked for, (z, x, y)."""
    tile = _png(BASEMAP_RGB)
    asked: list[tuple[int, int, int]] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = re.fullmatch(r"/(\d+)/(\d+)/(\d+)\.png", self.path)
            if found is None:
                self.send_error(404)
                return
            z, x, y = (int(part) for part in found.groups())
            asked.append((z, x, y))
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(tile)))
            self.send_header("Access-Control-Allow-Origin", "*")  # the map reads tiles as WebGL textures
            self.end_headers()
            self.wfile.write(tile)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, name="tile-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _tile_of(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """The web-mercator XYZ tile holding a point."""
    n = 2 ** zoom
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return int((lon + 180) / 360 * n), int(y)


def _basemap_share(session: Any) -> float:
    """The share of the map's pixels on the screen that have the basemap's colour."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    box = session.execute_script("const r = document.getElementById('map').getBoundingClientRect();"
                                 "return [r.left, r.top, r.right, r.bottom, window.devicePixelRatio];")
    left, top, right, bottom, ratio = box
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(session.get_screenshot_as_png()) as memory, memory.open() as image:
            pixels = image.read()[:3]
    window = pixels[:, int(top * ratio):int(bottom * ratio), int(left * ratio):int(right * ratio)]
    if not window.size:
        return 0.0
    match = np.all(window == np.asarray(BASEMAP_RGB, dtype=window.dtype)[:, None, None], axis=0)
    return float(match.mean())


def test_dashboard_draws_the_basemap_of_its_tiles_url(chromium: object, tmp_path: Path,
                                                      tile_server: TileServer) -> None:
    """``tiles_url`` set: the page asks the tile server for the tiles around the campaign and draws
    them (the basemap's colour fills much of the map), beneath the tiles' polygons; it fetches no
    geography of its own then, and loads nothing from outside 127.0.0.1."""
    from openeo_upscale.monitor.dashboard import create_app
    from tests.monitor.builders import build_campaign, serving

    template, asked = tile_server
    store, _ = build_campaign(tmp_path)  # tiles over 4.0-4.2 E, 51.0-51.15 N
    script = chromium.execute_script  # type: ignore[attr-defined]
    with store, serving(create_app(store, tiles_url=template)) as url:
        chromium.get(url + "/")  # type: ignore[attr-defined]
        wait_until(lambda: script("return Number(document.body.dataset.updates || 0)"), "the first update",
                   timeout=30)
        wait_until(lambda: asked, "a request for a basemap tile", timeout=30)
        share = wait_until(lambda: (found := _basemap_share(chromium)) > 0.2 and found, "the basemap drawn",
                           timeout=30)
        assert share < 0.99  # the campaign's tiles are drawn over it
        zoom = max(z for z, _, _ in asked)
        assert 6 <= zoom <= 14, asked  # fitted to the campaign, not the whole world
        assert (zoom, *_tile_of(4.1, 51.075, zoom)) in asked
        traces = script(GEOGRAPHY_TRACES)
        assert traces and not [trace for trace in traces if trace[2]]
        assert {"done (3)", "failed (3)", "running (2)"} <= {name for _, name, _, _ in traces}
        types = script("return document.getElementById('map').data.map(t => t.type + ':' + (t.fill || ''))")
        assert "scattermap:toself" in types
        fetched = script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert not any("/api/geography" in name for name in fetched)
        screenshot(chromium, "dashboard-basemap")
        assert requested_hosts(chromium) == {"127.0.0.1"}
