"""Resolve user-defined processes (UDPs) by namespace: an http(s) URL, a file path, or a name
looked up in the configured UDP folders.

A namespace URL whose file name matches a file in a UDP folder resolves to that file, so a
UDP published at a well-known URL can be used offline from a local mirror.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import requests

from openeo_upscale.backend.errors import ProcessUnsupported

_log = logging.getLogger(__name__)


class UdpResolver:
    """Loads UDP documents (`{id, parameters, process_graph, ...}`) and caches them."""

    def __init__(
        self, udp_dirs: tuple[Path, ...] = (), *, allow_http: bool = True, http_timeout: float = 10.0
    ) -> None:
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

    def resolve(self, namespace: str, process_id: str) -> dict[str, Any]:
        """The UDP `process_id` from `namespace`; raises ProcessUnsupported when not found."""
        with self._lock:
            cached = self._cache.get(namespace)
        if cached is None:
            cached = self._fetch(namespace, process_id)
            with self._lock:
                self._cache[namespace] = cached
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
                "no local copy and remote namespaces are disabled."
            )
        path = Path(namespace)
        if path.is_file():
            return self._load_file(path)
        local = self._local_file(path.name if path.suffix else f"{namespace}.json")
        if local:
            return self._load_file(local)
        raise ProcessUnsupported(f"Process '{process_id}' is not available in namespace '{namespace}'.")

    def _download(self, url: str, process_id: str) -> dict[str, Any]:
        try:
            resp = requests.get(url, timeout=self._timeout)
            resp.raise_for_status()
            doc = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProcessUnsupported(
                f"Process '{process_id}' is not available in namespace '{url}': {exc}"
            ) from exc
        if not isinstance(doc, dict) or "process_graph" not in doc:
            raise ProcessUnsupported(f"Namespace '{url}' does not hold a process definition.")
        return doc

    def _local_file(self, name: str) -> Path | None:
        for d in self._dirs:
            p = d / name
            if p.is_file():
                return p
        return None

    @staticmethod
    def _looks_like_udp(path: Path) -> bool:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(doc, dict) and "process_graph" in doc

    @staticmethod
    def _load_file(path: Path) -> dict[str, Any]:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ProcessUnsupported(f"Cannot read UDP file '{path.name}': {exc}") from exc
        if not isinstance(doc, dict) or "process_graph" not in doc:
            raise ProcessUnsupported(f"UDP file '{path.name}' does not hold a process definition.")
        return doc
