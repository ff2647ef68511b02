"""`make demo`: the reference workflow end to end, offline, on the embedded local backend.

A 5 km UTM grid over Antwerp (bbox 4.35,51.10,4.45,51.20, as in the ESA APEx upscaling
notebook), a best-available-pixel composite per tile (bands B04, B03, B02, May and June 2023)
with two jobs in parallel and live progress, the results downloaded, one mosaic per band and
month (Cloud-Optimized GeoTIFF) with a PNG quick-look, the June composite beside one raw cloudy
scene of the same area (`demo_picture`), the HTML report, and the command that opens the dashboard.

The local backend runs in real mode on its synthetic Sentinel-2 data. The UDP is the APEx
`bap_composite` by its namespace URL when a folder holding a copy of it is given (``udp_dir``),
and otherwise the project's own `bap_composite` UDP (`openeo_upscale/udp/bap_composite.json`).
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import openeo
import rasterio

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.config import Mode
from openeo_upscale.campaign import Campaign, Polling, TaskState, Udp
from openeo_upscale.demo_picture import Shares, cloud_shares, cloudy_scene, raw_scene, side_by_side
from openeo_upscale.grid import tiles
from openeo_upscale.udp import UDP_DIR

DEMO_BBOX = (4.35, 51.10, 4.45, 51.20)
"""West, south, east, north of the area: the reference notebook's Antwerp box."""
DEMO_TILE_SIZE = 5000
DEMO_PERIOD = ["2023-05-01", "2023-07-01"]
DEMO_BANDS = ["B04", "B03", "B02"]
PARALLEL_JOBS = 2
PICTURE_MONTH = "2023-06"
"""The month of the composite shown beside a raw scene."""
PICTURE_NAME = "composite-and-scene.png"
APEX_BAP_URL = ("https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/"
                "openeo_udp/bap_composite.json")

_OWNED = ("backend-state", "campaign.sqlite", "campaign.sqlite-wal", "campaign.sqlite-shm", "results",
          "mosaic", "report.html")
"""What a demo run writes into its output folder (and clears first, so that every run is fresh)."""


def _picture(connection: openeo.Connection, mosaic: Path) -> tuple[Path, Shares, date]:
    """The composite of `PICTURE_MONTH` beside a raw cloudy scene of that month, and their shares
    of cloud or shadow."""
    composite = [mosaic / f"openEO_{PICTURE_MONTH}-01Z_{band}.tif" for band in DEMO_BANDS]
    with rasterio.open(composite[0]) as ds:
        epsg, box = int(ds.crs.to_epsg()), ds.bounds
    bounds = (box.left, box.bottom, box.right, box.top)
    day = cloudy_scene(epsg, bounds, PICTURE_MONTH)
    scene = raw_scene(connection, epsg, bounds, day, mosaic)
    shares = cloud_shares(composite, scene, PICTURE_MONTH)
    return side_by_side(composite, scene, mosaic / PICTURE_NAME), shares, day


def run_demo(output: Path, *, udp_dir: Path | None = None, max_tiles: int | None = None,
             quiet: bool = False) -> int:
    """Run the demo into ``output``; returns the exit code (0 when every tile is done)."""
    from openeo_upscale.campaign.mosaic import build_mosaic
    from openeo_upscale.monitor import LogMonitor, TerminalMonitor, recent_errors
    from openeo_upscale.monitor.report import write_report

    output = output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    for name in _OWNED:
        path = output / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    grid = tiles(DEMO_BBOX, DEMO_TILE_SIZE)
    if max_tiles is not None:
        grid = grid.head(max_tiles)
    reference = udp_dir is not None and (udp_dir / "bap_composite.json").is_file()
    config = BackendConfig(state_dir=output / "backend-state", mode=Mode.REAL,
                           udp_dirs=(udp_dir,) if reference and udp_dir is not None else ())
    began = time.monotonic()
    with LocalBackend(config) as backend:
        if reference and udp_dir is not None:
            udp = Udp.from_file(udp_dir / "bap_composite.json", APEX_BAP_URL)
            which = "the APEx bap_composite UDP"
        else:
            udp = Udp.from_file(UDP_DIR / "bap_composite.json", f"{backend.api_url}/udp/bap_composite.json")
            which = "the project's own bap_composite UDP"
        print(f"local openEO backend (real mode) at {backend.url}")
        print(f"{len(grid)} tiles of {DEMO_TILE_SIZE // 1000} km over Antwerp; {which}; "
              f"{PARALLEL_JOBS} jobs in parallel")
        store_path = output / "campaign.sqlite"
        with Campaign.create(store_path, grid, udp, name="antwerp-bap",
                             defaults={"temporal_extent": DEMO_PERIOD, "bands": DEMO_BANDS},
                             output_dir=output / "results", polling=Polling(min_interval=0.2)) as campaign:
            connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
            campaign.add_backend("local", connection, parallel_jobs=PARALLEL_JOBS)
            monitor: Any = LogMonitor() if quiet or not sys.stdout.isatty() else TerminalMonitor()
            with monitor:
                campaign.start()
                while not campaign.wait(timeout=1.0):
                    monitor.update(campaign.summary(), recent_errors(campaign.store, campaign.id))
                monitor.update(campaign.summary(), recent_errors(campaign.store, campaign.id))
            status = campaign.status()
            done = status.counts[TaskState.DONE]
            if done != status.tasks:
                for error in recent_errors(campaign.store, campaign.id):
                    print(f"error: {error}", file=sys.stderr)
                print(f"only {done} of {status.tasks} tiles are done", file=sys.stderr)
                return 1
            collection = campaign.collection()
            mosaic = build_mosaic(campaign.store, campaign.id, output / "mosaic")
            report = write_report(campaign.store, campaign.id, output / "report.html")
            picture, shares, day = _picture(connection, output / "mosaic")
    print(f"\nall {done} tiles done in {time.monotonic() - began:.0f} s, {status.credits:.2f} credits")
    print(f"results:    {collection}")
    for path in mosaic:
        print(f"mosaic:     {path}")
    print(f"picture:    {picture}")
    print(f"            the {PICTURE_MONTH} composite has {shares.composite:.1%} cloud or shadow, "
          f"the raw scene of {day} beside it {shares.scene:.1%}")
    print(f"report:     {report}")
    print(f"dashboard:  openeo-upscale dashboard {store_path}")
    return 0
