"""Shared fixtures: the local backend on a free port, the shared/ folder, a loopback-only network."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import openeo
import pytest

from openeo_upscale.backend import BackendConfig, LocalBackend, Simulation

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Fast simulated jobs: a 5 km tile over two months takes about a second.
FAST = Simulation(time_scale=0.005, queue_seconds=2.0)


def _loopback_only(address: object) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("localhost",):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise RuntimeError(f"tests may not resolve or reach {host!r}") from None
        if not ip.is_loopback:
            raise RuntimeError(f"tests may only reach loopback, not {host}")


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach beyond 127.0.0.0/8."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _loopback_only(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def require_shared(*parts: str) -> Path:
    """A path under ../shared; skipped with a reason where it is absent, a failure under CI."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"{path} is absent (the shared/ folder beside the clone)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def udp_dir() -> Path:
    """The reference UDPs (max_ndvi, bap_composite, ...) from ../shared/udp."""
    return require_shared("udp")


def scratch_udps(tmp_path: Path) -> Path:
    """A UDP folder of the test's local backends, for UDP files a test writes and names by a file
    namespace (the backends read file namespaces only inside their UDP folders)."""
    folder = tmp_path / "udps"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def backend(tmp_path: Path, udp_dir: Path) -> Iterator[LocalBackend]:
    """A fresh local backend in simulated mode with fast jobs, the reference UDPs and `scratch_udps`."""
    config = BackendConfig(state_dir=tmp_path / "backend", udp_dirs=(udp_dir, scratch_udps(tmp_path)),
                           simulation=FAST)
    with LocalBackend(config) as running:
        yield running


@pytest.fixture
def connection(backend: LocalBackend) -> openeo.Connection:
    """An official `openeo` client connection, authenticated with basic auth."""
    return openeo.connect(backend.url).authenticate_basic("demo", "demo")


MAX_NDVI_URL = ("https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/"
                "openeo_udp/examples/max_ndvi/max_ndvi.json")
BAP_URL = ("https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/"
           "openeo_udp/bap_composite.json")
ANTWERP_BBOX = {"west": 4.35, "south": 51.10, "east": 4.42, "north": 51.15}
