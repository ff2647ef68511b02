"""The download pool: finished tasks' results fetched in parallel threads, off the scheduling path.

A task moves ``finished -> downloading -> done``; its files land in ``<output>/<tile_id>/``
next to ``item.json``, the backend's STAC item of the job's results. The scheduler claims finished
tasks in the store for this runner (`Store.claim_downloads`) and hands them to the pool; any runner
of a campaign may claim any download. A failed download goes back to ``finished`` with a time before
which no runner claims it again (the ``.part`` file resumes then), up to
`RetryPolicy.download_attempts`; an unsafe asset name or a malformed item fails the task at once.
A stop interrupts the downloads between two pieces and puts them back to ``finished``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from openeo_upscale.campaign.client import BackendClient
from openeo_upscale.campaign.downloads import download_results, safe_asset_path
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
        """Workers with nothing to do: how many more downloads to claim now."""
        with self._lock:
            return 0 if self._closed else max(0, self.workers - len(self._running))

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
        try:
            folder = task_folder(self.output_dir, task.tile_id)
            item = client.results(str(task.job_id), task_id=task.id)
            hrefs = [a.get("href") for a in (item.get("assets") or {}).values() if isinstance(a, Mapping)]
            session = client.download_session(str(hrefs[0]) if hrefs else "")
            paths = download_results(session, item, folder, should_stop=self._abort.is_set)
            _write_json(folder / ITEM_FILE, item)
        except PermanentError as exc:
            self._fail(task, f"results not available: {exc.reason}")
            return
        except DownloadError as exc:
            if self._abort.is_set():
                self._interrupted(task)
            elif exc.href is None:
                # The item itself is unacceptable (an unsafe name, a malformed asset): no retry helps.
                self._fail(task, f"results refused: {exc}")
            else:
                self._retry_later(task, str(exc), transient=exc.transient, retry_after=exc.retry_after)
            return
        except TransientError as exc:
            self._retry_later(task, str(exc), transient=True, retry_after=exc.retry_after)
            return
        except (BackendError, OSError) as exc:
            self._retry_later(task, str(exc))
            return
        if self._move(task, S.DONE, f"{len(paths)} file(s) downloaded", result_paths=[str(p) for p in paths]):
            log.info(
                "task %s (%s): %d result file(s) of job %s in %s",
                task.id,
                task.tile_id,
                len(paths),
                task.job_id,
                folder,
            )
        with self._lock:
            self._failures.pop(task.id, None)

    def _move(self, task: Task, to_state: TaskState, reason: str, **fields: Any) -> bool:
        """End this runner's claim on the download: one transition, only while the claim is still ours."""
        return self.store.transition(task.id, S.DOWNLOADING, to_state, actor=self.actor, reason=reason,
                                     claimed=self.runner_id, claim_expires=None, **fields)

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

    def _fail(self, task: Task, reason: str) -> None:
        log.error(
            "task %s (%s): job %s on backend %s: %s", task.id, task.tile_id, task.job_id, task.backend, reason
        )
        self._move(task, S.FAILED, reason, error=reason)


def _write_json(path: Path, doc: Any) -> None:
    """Write JSON atomically: a reader sees the old file or the whole new one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    os.replace(temporary, path)
