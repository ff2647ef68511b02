"""Resolve user-defined processes (UDPs) by namespace: an http(s) URL, a file path, or a name
looked up in the configured UDP folders.

A namespace URL whose file name matches a file in a UDP folder resolves to that file, so a
UDP published at a well-known URL can be used offline from a local mirror. Anything else is
refused unless the backend says otherwise:

- remote (http/https) namespaces are fetched only when `allow_http` is set (a backend that
  fetches what any user names can be made to reach any server its machine can: SSRF), with a
  deadline for the whole download and a size cap;
- a file namespace resolves only inside the UDP folders, and a path outside them, or one that
  does not exist, gets the same answer, so errors tell nothing about the server's disk;
- a namespace pointing at the backend itself (its own ``/udp/<name>.json``) is read from the
  folders directly: fetching it over HTTP would wait on the very server that is asking.

Reading a namespace can block (a slow server, a slow disk): callers run it off the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import requests

from openeo_upscale.backend.errors import ApiError, ProcessUnsupported
from openeo_upscale.backend.limits import parse_json

_log = logging.getLogger(__name__)

MAX_UDP_BYTES = 4 * 2**20
"""Largest UDP document read from a file or a URL (the APEx catalogue's biggest is ~60 KiB)."""


class UdpResolver:
    """Loads UDP documents (`{id, parameters, process_graph, ...}`) and caches them."""

    def __init__(
        self, udp_dirs: tuple[Path, ...] = (), *, allow_http: bool = False, http_timeout: float = 10.0
    ) -> None:
        """`allow_http`: fetch remote namespaces that have no local copy; `http_timeout`: seconds
        a whole download may take."""
        self._dirs = tuple(Path(d) for d in udp_dirs)
        self._allow_http = allow_http
        self._timeout = http_timeout
        self._cache: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def local_names(self) -> list[str]:
        """Names (file stems) of the UDPs in the configured folders."""
        names = set()
        for d in self._dirs:
            for p in d.glob("*.json"):
                if self._looks_like_udp(p):
                    names.add(p.stem)
        return sorted(names)

    def by_name(self, name: str) -> dict[str, Any] | None:
        """The UDP stored as `<name>.json` in a configured folder, if any."""
        path = self._local_file(f"{name}.json")
        return self._load_file(path) if path else None

    def resolve(self, namespace: str, process_id: str, *, own_udp_url: str | None = None) -> dict[str, Any]:
        """The UDP `process_id` from `namespace`; raises ProcessUnsupported when not found.

        `own_udp_url`: where this backend serves its UDP folders (``.../udp/``, as the caller
        reached it); a namespace under it is read from the folders, never fetched.
        """
        if own_udp_url and _same_server(namespace, own_udp_url):
            name = namespace[len(own_udp_url):] if namespace.startswith(own_udp_url) else ""
            doc = self.by_name(name.removesuffix(".json")) if name and "/" not in name else None
            if doc is None:
                raise ProcessUnsupported(
                    f"Process '{process_id}' is not available in namespace '{namespace}'.")
            return self._check_id(doc, namespace, process_id)
        with self._lock:
            cached = self._cache.get(namespace)
        if cached is None:
            cached = self._fetch(namespace, process_id)
            with self._lock:
                self._cache[namespace] = cached
        return self._check_id(cached, namespace, process_id)

    @staticmethod
    def _check_id(cached: dict[str, Any], namespace: str, process_id: str) -> dict[str, Any]:
        if cached.get("id") not in (None, process_id):
            raise ProcessUnsupported(
                f"Process '{process_id}' is not available in namespace '{namespace}' "
                f"(it defines '{cached.get('id')}')."
            )
        return cached

    def _fetch(self, namespace: str, process_id: str) -> dict[str, Any]:
        parsed = urlparse(namespace)
        if parsed.scheme in ("http", "https"):
            name = PurePosixPath(parsed.path).name
            local = self._local_file(name) if name else None
            if local:
                return self._load_file(local)
            if self._allow_http:
                return self._download(namespace, process_id)
            raise ProcessUnsupported(
                f"Process '{process_id}' is not available in namespace '{namespace}': "
                "no local copy in the backend's UDP folders (--udp-dir), and this backend does not "
                "fetch remote namespaces (allow_remote_namespaces in its configuration)."
            )
        local = self._inside_folders(namespace)
        if local:
            return self._load_file(local)
        # The same answer whether the path is outside the folders, missing or unreadable.
        raise ProcessUnsupported(f"Process '{process_id}' is not available in namespace '{namespace}'.")

    def _download(self, url: str, process_id: str) -> dict[str, Any]:
        """The document at `url`: the whole download within the timeout, at most `MAX_UDP_BYTES`."""
        try:
            doc = parse_json(download(url, timeout=self._timeout, max_bytes=MAX_UDP_BYTES),
                             "The namespace's document")
        except (requests.RequestException, ValueError, ApiError) as exc:
            reason = exc.message if isinstance(exc, ApiError) else str(exc)
            raise ProcessUnsupported(
                f"Process '{process_id}' is not available in namespace '{url}': {reason}"
            ) from exc
        if not isinstance(doc, dict) or "process_graph" not in doc:
            raise ProcessUnsupported(f"Namespace '{url}' does not hold a process definition.")
        return doc

    def _local_file(self, name: str) -> Path | None:
        """`name` (a bare file name) in the first UDP folder that has it."""
        if not name or "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
            return None
        for d in self._dirs:
            p = d / name
            if _is_file(p):
                return p
        return None

    def _inside_folders(self, namespace: str) -> Path | None:
        """The file a file namespace names, only when it lies inside a UDP folder: a bare name
        (``bap`` or ``bap.json``) is looked up in each folder, a path must lead into one."""
        if "\0" in namespace:
            return None
        path = Path(namespace)
        if len(path.parts) == 1:
            return self._local_file(namespace if path.suffix == ".json" else f"{namespace}.json")
        for d in self._dirs:
            try:
                folder = d.resolve()
                candidate = (folder / path).resolve()  # an absolute `path` replaces `folder`
            except (OSError, RuntimeError):
                continue
            if candidate.is_relative_to(folder) and _is_file(candidate):
                return candidate
        return None

    @staticmethod
    def _looks_like_udp(path: Path) -> bool:
        try:
            doc = UdpResolver._load_file(path)
        except ApiError:
            return False
        return isinstance(doc, dict)

    @staticmethod
    def _load_file(path: Path) -> dict[str, Any]:
        try:
            if path.stat().st_size > MAX_UDP_BYTES:
                raise ValueError(f"larger than {MAX_UDP_BYTES // 2**20} MiB")
            doc = parse_json(path.read_bytes(), f"UDP file '{path.name}'")
        except (OSError, ValueError) as exc:
            raise ProcessUnsupported(f"Cannot read UDP file '{path.name}': {exc}") from exc
        if not isinstance(doc, dict) or "process_graph" not in doc:
            raise ProcessUnsupported(f"UDP file '{path.name}' does not hold a process definition.")
        return doc


def _is_file(path: Path) -> bool:
    """`Path.is_file`, False for a name the system refuses too (longer than it allows, say), which
    `is_file` raises for: a user's namespace must never make the backend answer 500."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _same_server(url: str, other: str) -> bool:
    """True when `url` is an http(s) URL on the server (host and port) of `other`."""
    try:
        a, b = urlparse(url), urlparse(other)
        return a.scheme in ("http", "https") and (a.hostname, a.port) == (b.hostname, b.port)
    except ValueError:  # an unparsable port or address: not a URL of this server
        return False


def download(url: str, *, timeout: float, max_bytes: int) -> bytes:
    """The document at an http(s) `url`, the whole download within `timeout` seconds (a server
    that drips bytes cannot hold a worker) and at most `max_bytes`; `ValueError` or a
    `requests.RequestException` otherwise. Namespaces and ``load_stac``/``load_url`` use it."""
    deadline = time.monotonic() + timeout
    with requests.get(url, timeout=timeout, stream=True) as resp:
        resp.raise_for_status()
        chunks, size = [], 0
        for chunk in resp.iter_content(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(f"larger than {max_bytes // 2**20} MiB")
            if time.monotonic() > deadline:
                raise ValueError(f"no complete answer within {timeout:g} s")
            chunks.append(chunk)
    return b"".join(chunks)
