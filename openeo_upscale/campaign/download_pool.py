"""The download pool: finished tasks' results fetched in parallel threads, off the scheduling path.

A task moves ``finished -> downloading -> done``; its files land in ``<output>/<tile_id>/``
next to ``item.json``, the backend's results document (a STAC item, or a collection whose linked
items are kept in ``items/``). The scheduler claims finished tasks in the store for this runner
(`Store.claim_downloads`) and hands them to the pool; any runner of a campaign may claim any
download. Each asset is fetched on its own:

- a failed download goes back to ``finished`` with a time before which no runner claims it again
  (a ``.part`` file resumes then), up to `RetryPolicy.download_attempts`;
- an asset that answers a 4xx (other than 408 and 429), or a server error `SERVER_ERROR_LIMIT`
  times in a row (502, 503 and 504 excepted), is given up while the others are still fetched; the
  task then fails naming every such asset;
- an unsafe asset name or a malformed item fails the task at once;
- a results folder that cannot be written (disk full, read-only, no permission) fails nothing:
  the task waits in ``finished``, downloads pause (`disk_blocked`) and one tries again every
  `PROBE_SECONDS` until the folder can be written.

A stop interrupts the downloads between two pieces and puts them back to ``finished``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from openeo_upscale.campaign.asset_fetch import (
    Fetched,
    PlannedAsset,
    fetch_assets,
    fetch_document,
    plan_assets,
    result_items,
    safe_asset_path,
)
from openeo_upscale.campaign.client import BackendClient
from openeo_upscale.campaign.models import Task
from openeo_upscale.campaign.pacing import Backoff
from openeo_upscale.campaign.settings import RetryPolicy
from openeo_upscale.campaign.states import TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.errors import BackendError, DownloadError, PermanentError, StoreError, TransientError

log = logging.getLogger(__name__)

ITEM_FILE = "item.json"
"""The backend's STAC item of a job's results, kept beside the downloaded assets."""

DOWNLOAD_WORKERS = 4
"""Parallel downloads by default."""

TRANSIENT_FACTOR = 10
"""A transient download failure counts this much less than a failed download (see `_retry_later`)."""

SERVER_ERROR_LIMIT = 3
"""An asset that answers a server error this many times in a row is given up: the backend cannot
serve it. 502, 503 and 504 do not count: they say the service is unavailable for now (or behind a
gateway), not that this asset is broken, and are retried like an outage."""

UNAVAILABLE = frozenset({502, 503, 504})

DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
"""Errors of the local file system that no retry of one download can cure: downloads pause."""

PROBE_SECONDS = 5.0
"""While the disk is blocked, one download tries again this often."""


@dataclass(frozen=True)
class DiskBlocked:
    """Why downloads are paused: the results folder cannot be written."""

    path: str
    reason: str
    errno: int | None
    since: datetime

    def describe(self, waiting: int) -> str:
        label = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
                 errno.EROFS: "read-only file system"}.get(self.errno or 0, f"cannot write ({self.reason})")
        return (f"{label} at {self.path}: {waiting:,} download(s) waiting since "
                f"{self.since.strftime('%Y-%m-%d %H:%M:%S')} UTC; they resume once it can be written")

S = TaskState


def task_folder(output_dir: Path, tile_id: str) -> Path:
    """Where a task's results go: ``output_dir/<tile_id>``, refused if the tile id could escape it."""
    return safe_asset_path(output_dir, tile_id)


class Downloader:
    """A thread pool that turns claimed (`downloading`) tasks into done ones; `submit` never blocks."""

    def __init__(
        self,
        store: Store,
        output_dir: Path,
        clients: Mapping[str, BackendClient],
        *,
        workers: int = DOWNLOAD_WORKERS,
        retry: RetryPolicy | None = None,
        actor: str = "downloader",
        runner_id: int | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.output_dir = Path(output_dir)
        self.clients = clients
        self.retry = retry or RetryPolicy()
        self._backoff = Backoff(self.retry)
        self.actor = actor
        self.runner_id = runner_id
        """The runner the store claimed the downloads for; its transitions require that claim."""
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upscale-download")
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self._failures: dict[int, int] = {}
        self._server_errors: dict[tuple[int, str], int] = {}
        self._dead: dict[int, dict[str, str]] = {}
        """Per task, the assets given up (name -> why): not tried again until the task ends."""
        self._blocked: DiskBlocked | None = None
        self._probe_at = 0.0
        self._closed = False
        self._stranded: set[int] = set()
        self._abort = threading.Event()
        self.on_end = on_end
        """Called after each download attempt ends (the runner's `wake`)."""

    def submit(self, task: Task) -> bool:
        """Queue the download of a task claimed for this pool, unless it is queued already."""
        with self._lock:
            if self._closed or task.id in self._running:
                return False
            self._running.add(task.id)
        self._pool.submit(self._guarded, task)
        return True

    def free(self) -> int:
        """Workers with nothing to do: how many more downloads to claim now.

        While the disk is blocked, none, except one every `PROBE_SECONDS` to see whether it is
        writable again.
        """
        with self._lock:
            if self._closed:
                return 0
            idle = max(0, self.workers - len(self._running))
            if self._blocked is None:
                return idle
            now = time.monotonic()
            if now < self._probe_at or not idle:
                return 0
            self._probe_at = now + PROBE_SECONDS
            return 1

    @property
    def disk_blocked(self) -> DiskBlocked | None:
        """Why downloads are paused (the results folder cannot be written), or None."""
        with self._lock:
            return self._blocked

    def release_stranded(self) -> int:
        """Put back to `finished` the downloads whose outcome the store could not record (a database
        outage), so that they are claimed and done again (complete files are verified, not fetched
        again); returns how many. Those the store still refuses wait for the next call."""
        with self._lock:
            stranded = sorted(self._stranded)
        released = 0
        for task_id in stranded:
            try:
                self.store.transition(task_id, S.DOWNLOADING, S.FINISHED, actor=self.actor,
                                      reason="download again: its outcome could not be recorded",
                                      claimed=self.runner_id, claimed_by=None, claim_expires=None)
            except StoreError:
                continue
            released += 1
            with self._lock:
                self._stranded.discard(task_id)
        return released

    def in_flight(self) -> int:
        """Downloads queued or running."""
        with self._lock:
            return len(self._running)

    def shutdown(self, wait: bool = True, *, abort: bool = False) -> None:
        """Take no more work; drop queued downloads; with ``abort`` interrupt running ones between two
        pieces (they go back to `finished` and resume later); with ``wait`` let them end."""
        with self._lock:
            self._closed = True
        if abort:
            self._abort.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _guarded(self, task: Task) -> None:
        try:
            try:
                if self._abort.is_set():
                    self._interrupted(task)
                else:
                    self._download(task)
            except StoreError:
                raise
            except Exception:
                log.exception("task %s (%s): download of job %s crashed", task.id, task.tile_id, task.job_id)
                self._retry_later(task, "the download crashed (see the log)")
        except StoreError as exc:
            # The task is still `downloading`, claimed by this runner (its heartbeat keeps the claim):
            # without this, nobody would ever download it again.
            log.error("task %s (%s): the store failed while recording its download (%s); it is downloaded "
                      "again once the store answers", task.id, task.tile_id, exc)
            with self._lock:
                self._stranded.add(task.id)
        finally:
            with self._lock:
                self._running.discard(task.id)
            if self.on_end is not None:
                self.on_end()

    def _download(self, task: Task) -> None:
        client = self.clients.get(task.backend or "")
        if client is None:
            self._fail(task, f"backend {task.backend} is not configured; cannot download job {task.job_id}")
            return
        job_id = str(task.job_id)
        try:
            folder = task_folder(self.output_dir, task.tile_id)
            doc = client.results(job_id, task_id=task.id)
            url = client.connection.build_url(f"/jobs/{job_id}/results")
            items = result_items(doc, url, lambda href: fetch_document(client.download_session(href), href))
            planned = plan_assets(items, folder)
            with self._lock:
                dead = dict(self._dead.get(task.id, {}))
            fetched = fetch_assets(client.download_session, planned, skip=dead,
                                   should_stop=self._abort.is_set)
            if not fetched.failed and not dead:
                linked = [(index, item) for index, (_, item) in enumerate(items) if item is not doc]
                for index, item in linked:
                    _write_json(_linked_item_path(folder, index, planned), item)
                if linked:
                    # A collection's files sit in its items: item.json gathers their assets under
                    # the names they are saved as, so that verification and the catalogue read
                    # one document whatever the layout (the items themselves are kept in items/).
                    doc = {**doc, "assets": {a.name: {**a.metadata, "href": a.href} for a in planned}}
                _write_json(folder / ITEM_FILE, doc)
        except PermanentError as exc:
            self._fail(task, f"results not available: {exc.reason}")
            return
        except DownloadError as exc:
            if self._abort.is_set():
                self._interrupted(task)
            elif exc.href is None:
                # The item itself is unacceptable (an unsafe name, a malformed asset): no retry helps.
                self._fail(task, f"results refused: {exc}")
            elif exc.status is not None and not exc.transient:
                self._fail(task, f"results not available: {exc}")
            else:
                self._retry_later(task, str(exc), transient=exc.transient, retry_after=exc.retry_after)
            return
        except TransientError as exc:
            self._retry_later(task, str(exc), transient=True, retry_after=exc.retry_after)
            return
        except OSError as exc:
            if exc.errno in DISK_ERRORS:
                self._disk_blocked(task, exc)
            else:
                self._retry_later(task, str(exc))
            return
        except BackendError as exc:
            self._retry_later(task, str(exc))
            return
        self._disk_writable()
        if self._ended_assets(task, fetched, dead, len(planned)):
            return
        paths = fetched.paths
        if self._move(task, S.DONE, f"{len(paths)} file(s) downloaded", result_paths=[str(p) for p in paths]):
            log.info(
                "task %s (%s): %d result file(s) of job %s in %s",
                task.id,
                task.tile_id,
                len(paths),
                task.job_id,
                folder,
            )
        self._forget(task)

    def _forget(self, task: Task) -> None:
        """Drop what this pool counted about a task's download: it has ended."""
        with self._lock:
            self._failures.pop(task.id, None)
            self._dead.pop(task.id, None)
            for key in [key for key in self._server_errors if key[0] == task.id]:
                del self._server_errors[key]

    def _ended_assets(self, task: Task, fetched: Fetched, dead: dict[str, str], total: int) -> bool:
        """Settle the assets that failed: those failing for good are given up at once, the others are
        tried again later; the task fails once only failures for good are left. False: none failed."""
        for name, exc in fetched.failed.items():
            if exc.status is not None and not exc.transient:
                dead[name] = f"HTTP {exc.status}"
                continue
            with self._lock:
                # In a row: any other outcome for this asset starts the count again.
                server_error = exc.status is not None and exc.status >= 500 and exc.status not in UNAVAILABLE
                count = self._server_errors.get((task.id, name), 0) + 1 if server_error else 0
                self._server_errors[(task.id, name)] = count
            if count >= SERVER_ERROR_LIMIT:
                dead[name] = f"HTTP {exc.status} {count} times"
        with self._lock:
            if dead:
                self._dead[task.id] = dict(dead)
        retry = {name: exc for name, exc in fetched.failed.items() if name not in dead}
        if retry:
            reason = "; ".join(f"asset {name!r}: {exc}" for name, exc in retry.items())
            waits = [exc.retry_after for exc in retry.values() if exc.retry_after is not None]
            self._retry_later(task, reason, transient=all(exc.transient for exc in retry.values()),
                              retry_after=max(waits) if waits else None)
            return True
        if dead:
            listing = "; ".join(f"{name!r}: {reason}" for name, reason in sorted(dead.items()))
            self._fail(task, f"{len(dead)} of {total} result asset(s) cannot be downloaded: {listing}",
                       result_paths=[str(p) for p in fetched.paths])
            self._forget(task)
            return True
        return False

    def _move(self, task: Task, to_state: TaskState, reason: str, **fields: Any) -> bool:
        """End this runner's claim on the download: one transition, only while the claim is still ours."""
        return self.store.transition(task.id, S.DOWNLOADING, to_state, actor=self.actor, reason=reason,
                                     claimed=self.runner_id, claim_expires=None, **fields)

    def _disk_blocked(self, task: Task, exc: OSError) -> None:
        """The results folder cannot be written: not the task's fault. It waits in `finished`, and
        downloads pause until a probe finds the folder writable again."""
        where = str(exc.filename or self.output_dir)
        blocked = DiskBlocked(where, exc.strerror or str(exc), exc.errno, self.store.now())
        with self._lock:
            first = self._blocked is None
            if first:
                self._blocked = blocked
            self._probe_at = time.monotonic() + PROBE_SECONDS
        if first:
            log.error("cannot write the results (%s at %s): downloads pause until it can be written",
                      blocked.reason, where)
        self.store.transition(task.id, S.DOWNLOADING, S.FINISHED, actor=self.actor,
                              reason=f"waiting for the disk: {blocked.reason} at {where}",
                              claimed=self.runner_id, claimed_by=None,
                              claim_expires=self.store.now() + timedelta(seconds=PROBE_SECONDS))

    def _disk_writable(self) -> None:
        with self._lock:
            was, self._blocked = self._blocked, None
        if was is not None:
            log.warning("the results folder can be written again (blocked since %s): downloads resume",
                        was.since.isoformat())

    def _interrupted(self, task: Task) -> None:
        self._move(task, S.FINISHED, "download interrupted by a stop; resuming later", claimed_by=None)

    def _retry_later(self, task: Task, reason: str, *, transient: bool = False,
                     retry_after: float | None = None) -> None:
        """Back to `finished`, not to be claimed again before a backoff; failed after too many tries.

        Transient failures (no answer, 5xx, 429) get `TRANSIENT_FACTOR` times as many tries as
        failures of the download itself (a size or checksum mismatch, a local disk error). The
        count is this runner's: another runner that claims the download starts its own.
        """
        with self._lock:
            failures = self._failures.get(task.id, 0) + (1 if transient else TRANSIENT_FACTOR)
            self._failures[task.id] = failures
        if failures >= self.retry.download_attempts * TRANSIENT_FACTOR:
            self._fail(task, f"download failed too often, last: {reason}")
            return
        wait = self._backoff.delay(min(failures, 8), retry_after)
        log.warning(
            "task %s (%s): download of job %s failed (%s); retrying in %.1f s",
            task.id,
            task.tile_id,
            task.job_id,
            reason,
            wait,
        )
        self.store.transition(task.id, S.DOWNLOADING, S.FINISHED, actor=self.actor,
                              reason=f"download failed, will retry: {reason}", claimed=self.runner_id,
                              claimed_by=None, claim_expires=self.store.now() + timedelta(seconds=wait))

    def _fail(self, task: Task, reason: str, **fields: Any) -> None:
        log.error(
            "task %s (%s): job %s on backend %s: %s", task.id, task.tile_id, task.job_id, task.backend, reason
        )
        self._move(task, S.FAILED, reason, error=reason, **fields)


def _linked_item_path(folder: Path, index: int, planned: Sequence[PlannedAsset]) -> Path:
    """Where a linked item of the results is kept: ``items/item-<n>.json``, beside the assets."""
    taken = {asset.path for asset in planned}
    path = folder / "items" / f"item-{index}.json"
    while path in taken:
        path = path.with_name("_" + path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write_json(path: Path, doc: Any) -> None:
    """Write JSON atomically: a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    os.replace(temporary, path)
