"""Seeded, reproducible fault injection for the local backend, as an ASGI middleware.

Each decision is a pure function of (seed, fault kind, route, n-th request to that route), so
the same seed and the same requests give the same faults, whatever else runs concurrently.
Rate limiting is a per-caller token bucket answering 429 with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from openeo_upscale.backend.config import Faults, RateLimit
from openeo_upscale.backend.simulate import seeded_unit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TEMPLATES = [
    (re.compile(r"^/jobs/[^/]+/results/assets/.+$"), "/jobs/{job_id}/results/assets/{name}"),
    (re.compile(r"^/jobs/[^/]+/results$"), "/jobs/{job_id}/results"),
    (re.compile(r"^/jobs/[^/]+/logs$"), "/jobs/{job_id}/logs"),
    (re.compile(r"^/jobs/[^/]+/estimate$"), "/jobs/{job_id}/estimate"),
    (re.compile(r"^/jobs/[^/]+$"), "/jobs/{job_id}"),
    (re.compile(r"^/process_graphs/[^/]+$"), "/process_graphs/{process_graph_id}"),
    (re.compile(r"^/collections/[^/]+$"), "/collections/{collection_id}"),
]


def route_key(method: str, path: str, prefix: str) -> str:
    """`"GET /jobs/{job_id}"` for `GET <prefix>/jobs/j-123`."""
    if path.startswith(prefix):
        path = path[len(prefix) :] or "/"
    path = re.sub("/+", "/", path)
    if len(path) > 1:
        path = path.rstrip("/")
    for pattern, template in _TEMPLATES:
        if pattern.match(path):
            path = template
            break
    return f"{method.upper()} {path}"


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class FaultPlan:
    """Decides, per request, which fault (if any) to inject."""

    def __init__(self, faults: Faults, clock: Callable[[], float] = time.monotonic) -> None:
        self.faults = faults
        self._clock = clock
        self._counts: dict[tuple[str, str], int] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _rate(self, table: Any, route: str) -> float:
        rate = table.get(route, table.get("*", 0.0))
        return float(rate)

    def _draw(self, kind: str, route: str, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            n = self._counts.get((kind, route), 0)
            self._counts[(kind, route)] = n + 1
        return seeded_unit(f"{kind}:{route}:{n}", self.faults.seed) < rate

    def slow(self, route: str) -> float:
        slow = self._draw("slow", route, self._rate(self.faults.slow_rate, route))
        return self.faults.slow_seconds if slow else 0.0

    def drop(self, route: str) -> bool:
        return self._draw("drop", route, self._rate(self.faults.drop_rate, route))

    def lose_response(self, route: str) -> bool:
        return self._draw("lost", route, self._rate(self.faults.lost_response_rate, route))

    def server_error(self, route: str) -> bool:
        return self._draw("5xx", route, self._rate(self.faults.http_error_rate, route))

    def retry_after(self, caller: str) -> int | None:
        """Seconds to wait if `caller` is over its rate limit, else None (and a token is taken)."""
        limit: RateLimit | None = self.faults.rate_limit
        if limit is None:
            return None
        now = self._clock()
        with self._lock:
            bucket = self._buckets.setdefault(caller, _Bucket(float(limit.capacity), now))
            refill = (now - bucket.stamp) * limit.per_second
            bucket.tokens = min(float(limit.capacity), bucket.tokens + refill)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - bucket.tokens) / limit.per_second))


class FaultMiddleware:
    """Wraps the API app; only requests under `prefix` are subject to faults."""

    def __init__(self, app: ASGIApp, plan: FaultPlan, prefix: str) -> None:
        self.app = app
        self.plan = plan
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        route = route_key(scope["method"], scope["path"], self.prefix)
        delay = self.plan.slow(route)
        if delay:
            await asyncio.sleep(delay)
        headers = dict(scope.get("headers") or [])
        # Anonymous callers share a bucket per host: the client's port changes per connection.
        client = scope.get("client") or ("anonymous",)
        caller = (headers.get(b"authorization") or str(client[0]).encode()).decode("latin-1")
        wait = self.plan.retry_after(caller)
        if wait is not None:
            await _error(
                send,
                429,
                "TooManyRequests",
                f"Too many requests: retry after {wait} s.",
                {"retry-after": str(wait)},
            )
            return
        if self.plan.drop(route):
            await _drop(send)
            return
        if self.plan.server_error(route):
            await _error(
                send,
                503,
                "ServiceUnavailable",
                "Service is not available at the moment (injected fault).",
                {},
            )
            return
        if self.plan.lose_response(route):
            # The request takes effect but its answer never arrives: the case that makes a blind
            # retry of POST /jobs create a duplicate job.
            async def swallow(_message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            await _drop(send)
            return
        await self.app(scope, receive, send)


async def _error(send: Send, status: int, code: str, message: str, extra: dict[str, str]) -> None:
    body = json.dumps({"id": f"fault-{code.lower()}", "code": code, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Send) -> None:
    """Close the connection without an answer, as a dropped connection looks to a client.

    ASGI has no "close the socket" message, so this reaches for the server's transport when
    the server (uvicorn) exposes it on its `send`; otherwise it cuts a response short.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.close()
        # Let the loop run the server's connection_lost, so it sees a disconnect rather than
        # an app that returned without a response (which uvicorn logs as an error).
        await asyncio.sleep(0)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    await send({"type": "http.response.body", "body": b"{", "more_body": False})
