"""Stand-ins for unit tests of the engine: a clock that moves only when told, and a backend that
answers the scheduler's calls from a dict of jobs, records every call, and fails on request."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from openeo_upscale.errors import TransientError


class FakeClock:
    """One clock for the scheduler's monotonic seconds, its wall time and the store's timestamps."""

    def __init__(self, start: datetime = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)) -> None:
        self.seconds = 0.0
        self._start = start

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return self._start + timedelta(seconds=self.seconds)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


class FakeBackend:
    """The calls `Scheduler` makes to a `BackendClient`, answered from ``jobs`` (newest listed first).

    ``calls`` holds each call as ``(method, argument)``: the job id, the job's title for
    ``create_job``, or None. `fail` queues an error for the next call of a method; `lose_create_answer`
    has the next ``POST /jobs`` create its job and then lose the answer.
    """

    def __init__(self, name: str, clock: FakeClock, *, page_size: int = 100) -> None:
        self.name = name
        self.clock = clock
        self.page_size = page_size
        self.jobs: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[str]] = {}
        self.calls: list[tuple[str, str | None]] = []
        self.requests = 0
        self._failures: dict[str, deque[BaseException]] = {}
        self._lose_create = 0

    # steering ---------------------------------------------------------------------------------

    def fail(self, method: str, error: BaseException, times: int = 1) -> None:
        """Raise ``error`` from the next ``times`` calls of ``method``."""
        self._failures.setdefault(method, deque()).extend([error] * times)

    def lose_create_answer(self) -> None:
        """The next ``create_job`` creates the job, then its answer is lost (a dropped connection)."""
        self._lose_create += 1

    def set_status(self, job_id: str, status: str, **fields: Any) -> None:
        """What the backend lists for a job from now on."""
        self.jobs[job_id].update(status=status, **fields)

    def called(self, method: str) -> list[str | None]:
        """The arguments of every call of ``method`` so far."""
        return [argument for name, argument in self.calls if name == method]

    def _call(self, method: str, argument: str | None = None) -> None:
        self.calls.append((method, argument))
        self.requests += 1
        queued = self._failures.get(method)
        if queued:
            raise queued.popleft()

    # the client's calls -----------------------------------------------------------------------

    def connect(self) -> None:
        self._call("connect")

    def me(self) -> dict[str, Any]:
        self._call("me")
        return {}

    def validate(self, process: Mapping[str, Any]) -> list[str] | None:
        self._call("validate")
        return []

    def list_jobs(self, enough: Callable[[list[dict[str, Any]]], bool] | None = None
                  ) -> Iterator[dict[str, Any]]:
        newest_first = [dict(job) for job in reversed(self.jobs.values())]
        for start in range(0, max(len(newest_first), 1), self.page_size):
            self._call("list_jobs")
            page = newest_first[start:start + self.page_size]
            yield from page
            if not page or (enough is not None and enough(page)):
                return

    def create_job(self, process: Mapping[str, Any], *, title: str, description: str,
                   job_options: Mapping[str, Any] | None = None, task_id: int | None = None) -> str:
        self._call("create_job", title)
        job_id = f"{self.name}-job-{len(self.jobs) + 1}"
        self.jobs[job_id] = {"id": job_id, "title": title, "description": description, "status": "created",
                             "created": self.clock.wall().isoformat().replace("+00:00", "Z")}
        if self._lose_create:
            self._lose_create -= 1
            raise TransientError("POST /jobs: ConnectionError: connection reset by peer",
                                 backend=self.name, task_id=task_id)
        return job_id

    def start_job(self, job_id: str, *, task_id: int | None = None) -> None:
        self._call("start_job", job_id)
        self.jobs[job_id]["status"] = "queued"

    def cancel_job(self, job_id: str, *, task_id: int | None = None) -> None:
        self._call("cancel_job", job_id)
        self.jobs[job_id]["status"] = "canceled"

    def job(self, job_id: str, *, task_id: int | None = None) -> dict[str, Any]:
        self._call("job", job_id)
        return dict(self.jobs[job_id])

    def error_logs(self, job_id: str, *, task_id: int | None = None, limit: int = 20) -> list[str]:
        self._call("error_logs", job_id)
        return self.logs.get(job_id, [])[:limit]
