"""The runner process of the crash test: opens (or creates) a campaign and runs it to the end.

Run as ``python -m tests.campaign.crash_child --store ... --backend name=url ...`` from the repository
root. `tests/campaign/test_crash.py` kills it with SIGKILL at chosen moments and starts it again;
every run resumes the same campaign (``on_exists="resume"``).

Optional holds widen the windows a crash is most dangerous in, without changing what the engine
does in them (as a slow network or a slow disk would):

- ``--hold-before-create``: seconds between the task recording its client token (`creating`) and
  ``POST /jobs``: a crash there leaves a task in `creating` with no job anywhere;
- ``--hold-after-create``: seconds between the answer to ``POST /jobs`` and the store recording the
  job id: a crash there leaves a job on the backend that only its client token links to its task;
- ``--hold-in-download``: seconds spent in the middle of each result download, after its first
  piece reached the ``.part`` file: a crash there leaves a partial file to resume.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import openeo
import requests
import shapely

from openeo_upscale.campaign import asset_fetch
from openeo_upscale.campaign.campaign import Campaign
from openeo_upscale.campaign.client import BackendClient
from openeo_upscale.campaign.creator import Udp
from openeo_upscale.campaign.settings import Polling
from openeo_upscale.grid import tiles

FIRST_PIECE = io.DEFAULT_BUFFER_SIZE + 1
"""Bytes of a download written before the hold: more than the file buffer, so they reach the disk."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="SQLite file of the campaign")
    parser.add_argument("--name", default="crash", help="campaign name")
    parser.add_argument("--output", required=True, help="result folder")
    parser.add_argument("--udp", required=True, help="path of the UDP's process document")
    parser.add_argument("--namespace", default=None, help="where the backends find the UDP")
    parser.add_argument("--bbox", required=True, help="west,south,east,north of the area (lon/lat)")
    parser.add_argument("--tile-size", type=float, default=5000.0, help="tile side in metres")
    parser.add_argument("--temporal-extent", default="2023-05-01,2023-07-01")
    parser.add_argument(
        "--backend", action="append", required=True, metavar="NAME=URL", help="a backend (repeatable)"
    )
    parser.add_argument("--parallel-jobs", type=int, default=3)
    parser.add_argument("--min-interval", type=float, default=0.1)
    parser.add_argument("--max-interval", type=float, default=0.5)
    parser.add_argument("--hold-before-create", type=float, default=0.0)
    parser.add_argument("--hold-after-create", type=float, default=0.0)
    parser.add_argument("--hold-in-download", type=float, default=0.0)
    return parser.parse_args(argv)


def widen_crash_windows(hold_before_create: float, hold_after_create: float, hold_in_download: float) -> None:
    """Make this process linger where a crash does the most damage (see the module docstring)."""
    if hold_before_create > 0 or hold_after_create > 0:
        create_job = BackendClient.create_job

        def held_create(self: BackendClient, *args: Any, **kwargs: Any) -> str:
            time.sleep(hold_before_create)
            job_id = create_job(self, *args, **kwargs)
            time.sleep(hold_after_create)
            return job_id

        BackendClient.create_job = held_create  # type: ignore[method-assign]
    if hold_in_download > 0:
        fetch = asset_fetch._fetch

        def held_fetch(session: requests.Session, *args: Any) -> None:
            fetch(cast(requests.Session, _HeldSession(session, hold_in_download)), *args)

        asset_fetch._fetch = held_fetch  # type: ignore[assignment]


class _HeldSession:
    """A session whose streamed responses pause once, after their first `FIRST_PIECE` bytes."""

    def __init__(self, session: requests.Session, hold: float) -> None:
        self._session = session
        self._hold = hold

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return _HeldResponse(self._session.get(*args, **kwargs), self._hold)


class _HeldResponse:
    def __init__(self, response: requests.Response, hold: float) -> None:
        self._response = response
        self._hold = hold

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    def __enter__(self) -> _HeldResponse:
        self._response.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._response.__exit__(*exc_info)

    def iter_content(self, chunk_size: int = 1) -> Iterator[bytes]:
        first = True
        for block in self._response.iter_content(chunk_size=FIRST_PIECE):
            yield block
            if first:
                first = False
                time.sleep(self._hold)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s"
    )
    widen_crash_windows(args.hold_before_create, args.hold_after_create, args.hold_in_download)
    west, south, east, north = (float(v) for v in args.bbox.split(","))
    grid = tiles(shapely.box(west, south, east, north), args.tile_size)
    udp = Udp.from_file(args.udp, namespace=args.namespace)
    campaign = Campaign.create(
        args.store,
        grid,
        udp,
        name=args.name,
        defaults={"temporal_extent": args.temporal_extent.split(",")},
        output_dir=args.output,
        on_exists="resume",
        polling=Polling(min_interval=args.min_interval, max_interval=args.max_interval),
    )
    with campaign:
        for spec in args.backend:
            name, _, url = spec.partition("=")
            connection = openeo.connect(url).authenticate_basic("demo", "demo")
            campaign.add_backend(name, connection, parallel_jobs=args.parallel_jobs)
        summary = campaign.run()
    print(json.dumps(summary), flush=True)
    return 0 if summary["counts"].get("done") == summary["tasks"] else 1


if __name__ == "__main__":
    sys.exit(main())
