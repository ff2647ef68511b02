"""UDP namespaces over HTTP: remote ones only when allowed, never on the event loop, files only
inside the UDP folders, the backend's own URLs without a request to itself; and who may log in."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.config import User
from tests.conftest import FAST

SLOW_SECONDS = 8.0
"""How long the namespace server takes to answer (unless the test lets it go earlier)."""


class NamespaceServer:
    """A loopback server of one UDP document that holds each answer until `release()` or
    `SLOW_SECONDS`, counting the requests it got."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = json.dumps(document).encode()
        self.hits = 0
        self.waiting = threading.Event()
        self.go = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                outer.waiting.set()
                outer.go.wait(SLOW_SECONDS)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.document)))
                self.end_headers()
                self.wfile.write(outer.document)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/remote/elsewhere_ndvi.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.go.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def namespace_server(udp_dir: Path) -> Iterator[NamespaceServer]:
    document = json.loads((udp_dir / "max_ndvi.json").read_text())
    document["id"] = "elsewhere_ndvi"
    server = NamespaceServer(document)
    yield server
    server.close()


TWO_USERS = (User("alice", "alice-pw"), User("bob", "bob-pw"))


def _session(backend: LocalBackend, user: str, password: str) -> requests.Session:
    session = requests.Session()
    token = session.get(backend.api_url + "/credentials/basic", auth=(user, password)).json()["access_token"]
    session.headers["Authorization"] = f"Bearer basic//{token}"
    return session


def _call(pid: str, namespace: str) -> dict[str, Any]:
    return {
        "process_graph": {
            "n": {
                "process_id": pid,
                "namespace": namespace,
                "result": True,
                "arguments": {
                    "bbox": {"west": 5.0, "south": 51.2, "east": 5.01, "north": 51.21},
                    "temporal_extent": ["2023-05-01", "2023-07-01"],
                },
            }
        }
    }


def _errors(
    session: requests.Session, backend: LocalBackend, process: dict[str, Any]
) -> list[dict[str, str]]:
    response = session.post(backend.api_url + "/validation", json=process, timeout=60)
    assert response.status_code == 200, response.text
    return list(response.json()["errors"])


def test_remote_namespaces_are_not_fetched_by_default(
    backend: LocalBackend, namespace_server: NamespaceServer
) -> None:
    session = _session(backend, "demo", "demo")
    errors = _errors(session, backend, _call("elsewhere_ndvi", namespace_server.url))
    assert [e["code"] for e in errors] == ["ProcessUnsupported"]
    assert "does not fetch remote namespaces (allow_remote_namespaces" in errors[0]["message"]
    created = session.post(
        backend.api_url + "/jobs", json={"process": _call("elsewhere_ndvi", namespace_server.url)}
    )
    assert created.status_code == 400 and created.json()["code"] == "ProcessUnsupported"
    assert namespace_server.hits == 0  # the server was never asked


def test_a_slow_namespace_does_not_delay_another_users_requests(
    tmp_path: Path, udp_dir: Path, namespace_server: NamespaceServer
) -> None:
    """While alice's validation waits on a namespace server that takes 8 s, bob's `GET /jobs`
    answer as usual: none of 20 comes near the 8 s the first one took when namespaces blocked the
    server (each under 2 s), and their median is under 0.1 s, or under three times bob's own
    median before alice asked when the machine is that loaded (another test worker beside this
    one; a percentile of 20 requests swings with a single slow one). Then alice's validation
    succeeds."""
    config = BackendConfig(
        state_dir=tmp_path / "state",
        udp_dirs=(udp_dir,),
        users=TWO_USERS,
        allow_remote_namespaces=True,
        simulation=FAST,
    )
    with LocalBackend(config) as backend:
        alice, bob = _session(backend, "alice", "alice-pw"), _session(backend, "bob", "bob-pw")
        answer: dict[str, Any] = {}
        before = []
        for _ in range(20):
            start = time.perf_counter()
            assert bob.get(backend.api_url + "/jobs").status_code == 200
            before.append(time.perf_counter() - start)

        def validate() -> None:
            answer["errors"] = _errors(alice, backend, _call("elsewhere_ndvi", namespace_server.url))

        worker = threading.Thread(target=validate)
        worker.start()
        assert namespace_server.waiting.wait(10), "the backend never asked the namespace server"
        seconds = []
        for _ in range(20):
            start = time.perf_counter()
            assert bob.get(backend.api_url + "/jobs").status_code == 200
            seconds.append(time.perf_counter() - start)
        still_waiting = worker.is_alive()
        namespace_server.release()
        worker.join(30)
    median, usual = statistics.median(seconds), statistics.median(before)
    shown = ", ".join(f"{t * 1000:.0f}" for t in seconds)
    assert still_waiting, "alice's validation did not wait on the namespace server"
    assert max(seconds) < 2.0, f"bob's GET /jobs waited on alice's namespace: {shown} ms"
    assert median < max(0.1, 3 * usual), f"bob's GET /jobs: {shown} ms (median before: {usual * 1000:.0f} ms)"
    assert answer["errors"] == [] and namespace_server.hits == 1


def test_a_namespace_that_never_answers_times_out(
    tmp_path: Path, udp_dir: Path, namespace_server: NamespaceServer
) -> None:
    config = BackendConfig(
        state_dir=tmp_path / "state",
        udp_dirs=(udp_dir,),
        allow_remote_namespaces=True,
        namespace_timeout=0.5,
        simulation=FAST,
    )
    with LocalBackend(config) as backend:
        start = time.monotonic()
        errors = _errors(
            _session(backend, "demo", "demo"), backend, _call("elsewhere_ndvi", namespace_server.url)
        )
        elapsed = time.monotonic() - start
    assert [e["code"] for e in errors] == ["ProcessUnsupported"] and "timed out" in errors[0]["message"]
    assert elapsed < SLOW_SECONDS / 2, f"the validation waited {elapsed:.1f} s on a 0.5 s timeout"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_namespace_on_the_backend_itself_is_served_without_asking_itself(
    tmp_path: Path, udp_dir: Path, host: str
) -> None:
    """Its own ``/udp/<name>.json``, by either of its loopback names: read from the UDP folders.
    Any other URL of its own is refused at once, not fetched (it would wait on itself)."""
    config = BackendConfig(
        state_dir=tmp_path / "state",
        udp_dirs=(udp_dir,),
        allow_remote_namespaces=True,
        namespace_timeout=30,
        simulation=FAST,
    )
    with LocalBackend(config) as backend:
        session = _session(backend, "demo", "demo")
        own = backend.api_url.replace("127.0.0.1", host)
        start = time.monotonic()
        assert _errors(session, backend, _call("max_ndvi", f"{own}/udp/max_ndvi.json")) == []
        assert (
            session.post(
                backend.api_url + "/jobs", json={"process": _call("max_ndvi", f"{own}/udp/max_ndvi.json")}
            ).status_code
            == 201
        )
        refused = _errors(session, backend, _call("max_ndvi", f"{own}/jobs?x=max_ndvi"))
        elapsed = time.monotonic() - start
    assert [e["code"] for e in refused] == ["ProcessUnsupported"]
    assert elapsed < 5, f"{elapsed:.1f} s: the backend waited on itself"


def test_file_namespaces_outside_the_udp_folders_tell_nothing(
    backend: LocalBackend, tmp_path: Path, udp_dir: Path
) -> None:
    """An existing JSON file outside the folders and a missing one get the same answer; a file
    inside a folder works by its path."""
    outside = tmp_path / "outside_ndvi.json"
    outside.write_text((udp_dir / "max_ndvi.json").read_text().replace('"max_ndvi"', '"outside_ndvi"', 1))
    session = _session(backend, "demo", "demo")
    answers = set()
    for namespace in (
        str(outside),
        str(tmp_path / "missing_ndvi.json"),
        "/etc/passwd",
        "/etc/no/such.json",
        f"{udp_dir}/../{tmp_path.name}/outside_ndvi.json",
        "n" * 5000,  # longer than a file name may be: the system refuses to look
        f"/{'d' * 300}/outside_ndvi.json",
    ):
        errors = _errors(session, backend, _call("outside_ndvi", namespace))
        assert len(errors) == 1, errors
        answers.add((errors[0]["code"], errors[0]["message"].replace(namespace, "<namespace>")))
    assert answers == {
        (
            "ProcessUnsupported",
            "Node 'n': Process 'outside_ndvi' is not available in namespace '<namespace>'.",
        )
    }
    assert _errors(session, backend, _call("max_ndvi", str(udp_dir / "max_ndvi.json"))) == []


def test_the_demo_account_is_only_enabled_on_loopback(tmp_path: Path) -> None:
    """Served on every interface with no accounts configured, nobody can log in, demo included;
    with accounts named in the config, those can."""
    assert [u.name for u in BackendConfig().accounts] == ["demo"]
    with LocalBackend(BackendConfig(state_dir=tmp_path / "open", host="0.0.0.0")) as backend:
        url = backend.url.replace("0.0.0.0", "127.0.0.1")
        refused = requests.get(url + "/openeo/1.2/credentials/basic", auth=("demo", "demo"))
        assert refused.status_code == 403 and refused.json()["code"] == "CredentialsInvalid"
    config = BackendConfig(state_dir=tmp_path / "named", host="0.0.0.0", users=TWO_USERS)
    with LocalBackend(config) as backend:
        url = backend.url.replace("0.0.0.0", "127.0.0.1")
        assert (
            requests.get(url + "/openeo/1.2/credentials/basic", auth=("alice", "alice-pw")).status_code == 200
        )
        assert requests.get(url + "/openeo/1.2/credentials/basic", auth=("demo", "demo")).status_code == 403
