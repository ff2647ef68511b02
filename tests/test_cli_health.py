"""`openeo-upscale run` against backends that cannot be used: a wrong password, an OIDC provider that
does not answer, a UDP the backend refuses in ``POST /validation``; and `run --dry-run` asking each
backend to validate the campaign's process graph.

Every case checks the outcome where it lands: the exit code and stderr, the task states in the
store, and the backend's own job list through the official client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openeo_upscale.backend import LocalBackend
from openeo_upscale.backend.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from openeo_upscale.campaign import Store, TaskState
from openeo_upscale.cli import main
from openeo_upscale.grid import tiles
from tests.campaign.proxy import Proxy
from tests.conftest import scratch_udps
from tests.helpers import BBOX, PASSWORD_ENV, USER_ENV, campaign_toml, local_backend_jobs

S = TaskState
TASKS = len(tiles(BBOX, 5000))
BASIC_AUTH = f'auth = "basic"\nusername_env = "{USER_ENV}"\npassword_env = "{PASSWORD_ENV}"\n'


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo account in the environment variables the campaign TOML names."""
    monkeypatch.setenv(USER_ENV, "demo")
    monkeypatch.setenv(PASSWORD_ENV, "demo")


@pytest.fixture
def proxy(backend: LocalBackend) -> Iterator[Proxy]:
    """The local backend behind a proxy that can cut its OIDC provider off."""
    with Proxy(backend.url) as running:
        yield running


def _oidc_toml(tmp_path: Path, url: str, udp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI campaign with OIDC client credentials (the local provider's demo client) instead of basic."""
    monkeypatch.setenv("OPENEO_LOCAL_CLIENT_ID", DEFAULT_CLIENT_ID)
    monkeypatch.setenv("OPENEO_LOCAL_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
    toml = campaign_toml(tmp_path, url, udp_dir)
    text = toml.read_text()
    assert BASIC_AUTH in text
    toml.write_text(text.replace(BASIC_AUTH, 'auth = "oidc-client-credentials"\nprovider_id = "local"\n'))
    return toml


def _counts(tmp_path: Path) -> dict[TaskState, int]:
    """The task counts of the campaign in the store the TOML names."""
    with Store.open(tmp_path / "campaign.sqlite") as store:
        (campaign,) = store.campaigns()
        return store.counts(campaign["id"])


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    assert lines[0].startswith("openeo-upscale: error: no backend can run campaign 'antwerp': backend local")
    return lines[0]


def _bad_udp(tmp_path: Path, udp_dir: Path) -> Path:
    """max_ndvi whose temporal reducer calls a process no backend has."""
    document = json.loads((udp_dir / "max_ndvi.json").read_text())
    document["id"] = "broken_ndvi"
    reducer = document["process_graph"]["reducedimension2"]["arguments"]["reducer"]["process_graph"]
    reducer["max1"]["process_id"] = "no_such_process"
    path = scratch_udps(tmp_path) / "broken_ndvi.json"
    path.write_text(json.dumps(document))
    return path


def _with_udp(toml: Path, udp: Path, namespace: str | None) -> None:
    text = toml.read_text()
    table = text[text.index("[udp]"):text.index("[defaults]")]
    lines = ["[udp]", f"file = {json.dumps(str(udp))}"]
    if namespace is not None:
        lines.append(f"namespace = {json.dumps(namespace)}")
    toml.write_text(text.replace(table, "\n".join(lines) + "\n\n"))


# -- authentication at the start of a run ---------------------------------------------------------------


def test_a_wrong_password_stops_the_run_with_one_line_and_no_job(
    tmp_path: Path, backend: LocalBackend, udp_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(USER_ENV, "demo")
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    toml = campaign_toml(tmp_path, backend.url, udp_dir)
    began = time.monotonic()
    assert main(["run", str(toml), "--quiet"]) == 2
    assert time.monotonic() - began < 10, "a refused login must stop the run at once"
    line = _one_error_line(capsys.readouterr().err)
    assert "cannot authenticate" in line and "[403] CredentialsInvalid" in line
    assert f"Its {TASKS} pending task(s) stay pending" in line
    assert "not-the-password" not in line

    counts = _counts(tmp_path)
    assert counts[S.FAILED] == 0 and counts[S.PENDING] == TASKS
    assert local_backend_jobs(backend) == []

    # `status` (another process's view, from the store) says why.
    assert main(["status", str(tmp_path / "campaign.sqlite"), "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["backends"]["local"]
    assert entry["state"] == "unusable" and "CredentialsInvalid" in entry["reason"]


def test_with_another_backend_the_run_finishes_and_says_which_one_was_unusable(
    tmp_path: Path, backend: LocalBackend, udp_dir: Path, credentials: None, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WRONG_PASSWORD", "not-the-password")
    toml = campaign_toml(tmp_path, backend.url, udp_dir, backend_extra=f"""
[[backends]]
name = "typo"
url = "{backend.url}"
weight = 10.0
username_env = "{USER_ENV}"
password_env = "WRONG_PASSWORD"
""")
    assert main(["run", str(toml), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"done {TASKS}" in captured.out
    refused = "backend typo unusable: cannot authenticate: login refused: [403] CredentialsInvalid"
    assert refused in captured.err
    assert "Traceback" not in captured.err
    assert _counts(tmp_path)[S.DONE] == TASKS


def test_an_oidc_provider_that_does_not_answer_at_start_stops_the_run_the_same_way(
    tmp_path: Path, proxy: Proxy, backend: LocalBackend, udp_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    toml = _oidc_toml(tmp_path, proxy.url, udp_dir, monkeypatch)
    proxy.oidc_down.set()
    assert main(["run", str(toml), "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "cannot authenticate: identity provider unavailable" in line
    assert "openid-configuration" in line  # the discovery document is what could not be had
    assert proxy.dropped >= 1

    counts = _counts(tmp_path)
    assert counts[S.FAILED] == 0 and counts[S.PENDING] == TASKS
    assert local_backend_jobs(backend) == []


def test_oidc_client_credentials_run_to_the_end_through_the_provider(
    tmp_path: Path, proxy: Proxy, udp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same configuration with the provider answering: the run works (the failures above are
    the provider's, not the configuration's)."""
    toml = _oidc_toml(tmp_path, proxy.url, udp_dir, monkeypatch)
    assert main(["run", str(toml), "--quiet"]) == 0
    assert _counts(tmp_path)[S.DONE] == TASKS


# -- validation before the first launch -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["file-namespace", "stored"])
def test_a_udp_the_backend_lacks_a_process_for_is_refused_before_the_first_job(
    tmp_path: Path, backend: LocalBackend, udp_dir: Path, credentials: None, where: str,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """By ``POST /validation`` (the UDP by a file namespace the backend reads), or when the run stores
    the UDP on the backend (no namespace): the backend's own message, no job, no task failed."""
    udp = _bad_udp(tmp_path, udp_dir)
    toml = campaign_toml(tmp_path, backend.url, udp_dir)
    _with_udp(toml, udp, str(udp) if where == "file-namespace" else None)
    assert main(["run", str(toml), "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no_such_process" in line  # the backend's message
    if where == "file-namespace":
        assert "refused the process graph of task" in line and "POST /validation" in line
    else:
        assert "refused the campaign's UDP" in line
    counts = _counts(tmp_path)
    assert counts[S.FAILED] == 0 and counts[S.PENDING] == TASKS
    assert local_backend_jobs(backend) == []


def test_dry_run_asks_each_backend_to_validate(
    tmp_path: Path, backend: LocalBackend, udp_dir: Path, credentials: None,
    capsys: pytest.CaptureFixture[str]
) -> None:
    toml = campaign_toml(tmp_path, backend.url, udp_dir)
    assert main(["run", str(toml), "--dry-run"]) == 0
    assert f"backend local: {backend.url}, 4 parallel job(s), auth basic: valid" in capsys.readouterr().out

    udp = _bad_udp(tmp_path, udp_dir)
    for namespace in (str(udp), None):
        _with_udp(toml, udp, namespace)
        assert main(["run", str(toml), "--dry-run"]) == 2
        captured = capsys.readouterr()
        assert "auth basic: refused the process graph: ProcessUnsupported" in captured.out
        assert "no_such_process" in captured.out
        assert "1 backend(s) would not run the campaign" in captured.err
    assert local_backend_jobs(backend) == []
    assert not list(tmp_path.glob("campaign.sqlite*"))
    assert not [p for p in _stored_processes(backend)]  # the dry run stores nothing on the backend


def _stored_processes(backend: LocalBackend) -> list[dict[str, Any]]:
    import openeo

    found: list[dict[str, Any]] = openeo.connect(backend.url).authenticate_basic(
        "demo", "demo").list_user_defined_processes()
    return found


def test_dry_run_says_when_a_backend_cannot_be_asked_or_has_no_validation(
    tmp_path: Path, proxy: Proxy, udp_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    toml = campaign_toml(tmp_path, proxy.url, udp_dir)
    monkeypatch.setenv(USER_ENV, "demo")
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    assert main(["run", str(toml), "--dry-run"]) == 2
    out = capsys.readouterr().out
    assert "auth basic: cannot authenticate: login refused: [403] CredentialsInvalid" in out

    monkeypatch.setenv(PASSWORD_ENV, "demo")
    proxy.hide_validation = True
    assert main(["run", str(toml), "--dry-run"]) == 0
    assert "auth basic: no /validation endpoint" in capsys.readouterr().out

    monkeypatch.delenv(PASSWORD_ENV)
    assert main(["run", str(toml), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "auth basic: could not be asked: backend local (auth = 'basic'): set the environment " \
           f"variable(s) {PASSWORD_ENV}" in out
