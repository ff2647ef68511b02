"""What the local backend accepts from a request: body size, JSON depth, numbers and names.

Every bad request must end in a 4xx openEO error, never a 500: these checks run before a body
reaches a route, so the routes (and the validator, the job store and the response encoder,
which all recurse over JSON) only ever see bounded documents.
"""

from __future__ import annotations

import json
import math
from typing import Any

from openeo_upscale.backend import errors as e
from openeo_upscale.backend.faults import ASGIApp, Message, Receive, Scope, Send

MAX_JSON_DEPTH = 100
"""Nesting levels a JSON document may have. A process graph with callbacks 16 deep (the
validator's limit) needs about 90; Python's own parser and encoder give up near 1000."""
MAX_PAGE = 1000
"""Most entries in one page of `/jobs` or of a job's logs; a bigger `limit` gets this many."""



def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_depth(value: Any) -> int:
    """Nesting levels of a parsed JSON value (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(raw: bytes | str, what: str = "The request body") -> Any:
    """Parse JSON strictly: no NaN or Infinity, no number a float cannot hold, at most
    `MAX_JSON_DEPTH` levels. Raises `errors.BadRequest` naming what was wrong."""
    try:
        value = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise e.BadRequest(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise e.BadRequest(f"{what} is not valid JSON: {exc}") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise e.BadRequest(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels.")
    return value


def page_size(limit: int | None) -> int | None:
    """The page size the backend serves for an asked ``limit``: at most `MAX_PAGE` (the API lets a
    backend return fewer items than asked); None (no limit asked) stays None."""
    return None if limit is None else min(limit, MAX_PAGE)


def bad_name(name: str) -> bool:
    """True for a name no result file can have: control characters, NUL included."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)


class BodyLimit:
    """ASGI middleware that answers 413 for a request body over `max_bytes`, before the app
    reads any of it: a too-large ``Content-Length`` at once, a chunked body once it passes the
    limit. Hand-written: Starlette and uvicorn have no body size limit of their own."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, send: Send) -> None:
        mb = self.max_bytes / 2**20
        err = e.PayloadTooLarge(f"The request body is larger than this backend accepts ({mb:g} MiB).")
        payload = json.dumps(err.to_dict()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives `messages` first, then whatever the client sends next."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
