"""The web dashboard: a live map of the tiles coloured by state, counts, throughput, slots, credits.

`create_app` builds a read-only FastAPI app over a store (SQLite file or ``postgresql://`` URL)
that a campaign in another process may be writing; `serve` runs it with uvicorn. Everything the
page loads comes from the app itself (plotly.js from the installed ``plotly`` package), so it works
offline: beneath the tiles it draws the coastlines, borders, rivers and lakes of the package's
Natural Earth extract (`geography`), served by the app. With a tile URL configured, the map is
drawn over that XYZ basemap instead (the browser then loads the basemap's tiles from its server).

Endpoints (JSON unless said otherwise):

- ``GET /``: the page; ``GET /static/...``: its script and style; ``GET /static/plotly.min.js``.
- ``GET /api/config``: ``{"campaign", "tasks", "tiles_url", "polygon_limit", "colors": {state: css
  colour}, "states": [...]}``.
- ``GET /api/tiles[?centres=true]``: the tiles as GeoJSON (`data.tiles_geojson`), polygons or
  centre points, fetched once by the page (centres above ``polygon_limit`` tiles).
- ``GET /api/geography?bbox=W,S,E,N[&aspect=R]``: for the tiles' bounds, the box the map shows
  (``view``: W, S, E, N; of width / height ``R`` on screen), each layer's lines near it
  (``layers``: {name: {"x": [...], "y": [...]}}, lines separated by null) and their line styles
  (``styles``); fetched once by the page when there is no basemap.
- ``GET /api/states[?since=CURSOR]``: the tasks' states in columns (`data.states`), polled.
- ``GET /api/overview``: counts, backends, credits, throughput, ETA, timeline, failures
  (`data.overview`), polled.
- ``GET /api/tasks/{task_id}/jobs``: one task's backend jobs from the ledger, every attempt
  (`data.task_jobs`); 404 for a task the campaign does not have.

DOM contract for browser tests (kept stable): the page has ``#map``, ``#counts``, ``#timeline``,
``#backends``, ``#credits``, ``#eta`` and ``#failures``; a row of ``#failures`` (``data-task``) with
more than one job has a ``button.jobs`` that lists its attempts in the row below it
(``tr.attempts``, one ``tr.attempt`` per job). The map's geography traces carry
``meta.geography`` (the layer's name). After each successful update
``document.body`` carries ``data-updates`` (number of updates so far, from 1), ``data-tasks``
(number of tasks), ``data-done`` (tasks in state ``done``), ``data-finished`` (tasks in
``finished``, ``downloading`` or ``done``: the backend job finished) and ``data-states`` (JSON
object state -> count). ``data-error`` is set (and cleared again) when a poll fails. Waiting for
a tile to turn done is: wait until ``Number(document.body.dataset.done) > 0``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from openeo_upscale.campaign.store import Store
from openeo_upscale.errors import StoreError
from openeo_upscale.monitor import data, geography
from openeo_upscale.monitor.colors import STATE_COLORS

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
"""The page's own files: index.html, app.js, style.css."""
DEFAULT_HOST = "127.0.0.1"
"""Address `serve` binds by default: this machine only."""
DEFAULT_PORT = 8050
"""Port `serve` listens on by default."""
POLYGON_LIMIT = 3000
"""Up to this many tiles the map draws their outlines; beyond, their centres (``/api/tiles?centres=true``)."""


def plotly_js() -> Path:
    """plotly.min.js as shipped by the installed ``plotly`` Python package."""
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise StoreError(f"plotly.min.js not found at {path}; reinstall plotly")
    return path


def _json(payload: Any) -> Response:
    # Serialized here, not by FastAPI's encoder, which is slow on 100,000-element lists.
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


def _open_existing(target: str | os.PathLike[str]) -> Store:
    """Open a store that must exist already: the dashboard never creates one."""
    text = os.fspath(target)
    if "://" not in text and not Path(text).expanduser().is_file():
        raise StoreError(f"no store at {text}")
    return Store.open(text)


class _Campaign:
    """Which campaign the app shows, found on first use (the campaign may not exist yet)."""

    def __init__(self, store: Store, name: str | None) -> None:
        self.store = store
        self.name = name
        self._id: int | None = None
        self._tiles: dict[bool, tuple[tuple[int, int], bytes]] = {}
        self._tiles_lock = threading.Lock()

    def id(self) -> int:
        if self._id is None:
            try:
                self._id = int(self.store.campaign(name=self.name)["id"])
            except StoreError as exc:
                raise HTTPException(status_code=503, detail=str(exc)) from exc
        return self._id

    def count(self) -> tuple[int, int]:
        """How many tasks the campaign has, and its highest task id."""
        return self.store.task_count_and_last_id(self.id())

    def tiles(self, centres: bool) -> Response:
        """The GeoJSON, rebuilt only when tasks were added (tiles never change otherwise)."""
        key = self.count()
        with self._tiles_lock:  # one build at a time (the warm-up thread and a request may race)
            cached = self._tiles.get(centres)
            if cached is None or cached[0] != key:
                payload = data.tiles_geojson(self.store, self.id(), centres=centres)
                cached = self._tiles[centres] = (key, json.dumps(payload, separators=(",", ":")).encode())
        return Response(cached[1], media_type="application/geo+json", headers={"Cache-Control": "no-store"})

    def warm(self) -> None:
        """Build the tiles the page will ask for first, and read the geography, so that its first
        load does not wait for them."""
        try:
            self.tiles(centres=self.count()[0] > POLYGON_LIMIT)
            geography.extract()
        except HTTPException:
            pass  # no campaign yet: the first request builds it
        except Exception:  # a warm-up must never take the dashboard down
            log.exception("could not prepare the tiles in advance")


def create_app(store_target: str | os.PathLike[str] | Store, campaign_name: str | None = None, *,
               tiles_url: str | None = None) -> FastAPI:
    """The dashboard app over a store (path, URL or an open `Store`), read-only.

    ``campaign_name`` picks the campaign when the store holds several. ``tiles_url`` is an XYZ
    raster tile URL template (``.../{z}/{x}/{y}.png``) for a basemap, which the browser fetches
    itself; none by default, so that the page loads nothing from outside and draws the package's
    geography (`geography`) beneath the tiles instead.
    """
    store = store_target if isinstance(store_target, Store) else _open_existing(store_target)
    owns = not isinstance(store_target, Store)
    shown = _Campaign(store, campaign_name)
    plotly_path = plotly_js()

    app = FastAPI(title="openeo-upscale dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(GZipMiddleware, minimum_size=4096, compresslevel=5)
    if owns:
        app.router.on_shutdown.append(store.close)
    app.router.on_startup.append(
        lambda: threading.Thread(target=shown.warm, name="dashboard-warm-up", daemon=True).start())

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    # Declared before the mount so that it wins over /static.
    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(plotly_path, media_type="text/javascript")

    @app.get("/api/config")
    def config() -> Response:
        return _json({"campaign": store.campaign(shown.id())["name"], "tasks": shown.count()[0],
                      "tiles_url": tiles_url, "polygon_limit": POLYGON_LIMIT,
                      "colors": {state.value: color for state, color in STATE_COLORS.items()},
                      "states": list(data.STATE_ORDER)})

    @app.get("/api/tiles")
    def tiles(centres: bool = False) -> Response:
        return shown.tiles(centres)

    @app.get("/api/geography")
    def geography_near(bbox: str, aspect: float | None = Query(default=None, gt=0.05, lt=20)) -> Response:
        return _json(geography_payload(_parse_bbox(bbox), aspect=aspect))

    @app.get("/api/states")
    def states(since: float | None = None) -> Response:
        return _json(data.states(store, shown.id(), since=since))

    @app.get("/api/overview")
    def overview() -> Response:
        return _json(data.overview(store, shown.id()))

    @app.get("/api/tasks/{task_id}/jobs")
    def task_jobs(task_id: int) -> Response:
        found = data.task_jobs(store, shown.id(), task_id)
        if found is None:
            name = store.campaign(shown.id())["name"]
            raise HTTPException(status_code=404, detail=f"no task with id {task_id} in campaign {name!r}")
        return _json(found)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _parse_bbox(text: str) -> geography.Box:
    """``W,S,E,N`` in degrees, or a 422 saying what is wrong."""
    try:
        west, south, east, north = (float(part) for part in text.split(","))
        if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
            raise ValueError("not within -180..180, -90..90 with west <= east and south <= north")
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"bbox must be W,S,E,N in degrees: {exc}") from exc
    return west, south, east, north


def geography_payload(bounds: geography.Box, *, aspect: float | None = None) -> dict[str, Any]:
    """What ``/api/geography`` answers for the tiles' ``bounds``: the view, the lines near it and
    their styles."""
    view = geography.view_box(bounds, aspect=aspect)
    return {"view": list(view), "styles": geography.STYLES,
            "layers": {name: lines.to_dict() for name, lines in geography.near(view).items()}}


def serve(store: str | os.PathLike[str] | Store | FastAPI, campaign_name: str | None = None, *,
          host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, tiles_url: str | None = None) -> None:
    """Serve the dashboard (of a store, or an app from `create_app`) with uvicorn until interrupted."""
    import uvicorn

    app = store if isinstance(store, FastAPI) else create_app(store, campaign_name, tiles_url=tiles_url)
    log.info("dashboard at http://%s:%d", host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")
