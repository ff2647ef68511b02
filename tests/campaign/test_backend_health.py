"""Backends that cannot be reached, authenticated or launched on, through the Python API.

Real local backends over HTTP (behind a loopback proxy where the OIDC provider must go away, see
`tests.campaign.proxy`), the official client, a real store. Each test checks what the user sees
(`Campaign.summary`, `status --json`, the monitors) and what happened: task states in the store,
jobs on the backend.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import openeo
import pytest
import requests
from openeo.rest import OpenEoApiError, OpenEoClientException
from openeo.rest.auth.oidc import OidcDeviceCodePollTimeout, OidcException
from rich.console import Console

from openeo_upscale.backend import Simulation
from openeo_upscale.backend.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Faults
from openeo_upscale.campaign import Campaign, Leases, Leasing, RetryPolicy, Store, TaskState, Udp
from openeo_upscale.campaign.client import BackendClient, login_error
from openeo_upscale.campaign.config import AuthKind, BackendConfig, connection_factory
from openeo_upscale.campaign.health import BackendState, Health
from openeo_upscale.cli import main
from openeo_upscale.errors import (
    AuthError,
    NoUsableBackendError,
    PermanentError,
    ProviderUnavailableError,
    TransientError,
)
from openeo_upscale.monitor import LogMonitor, TerminalMonitor
from tests.campaign.proxy import Proxy
from tests.campaign.team import (
    DEFAULTS,
    POLL,
    backend_jobs,
    check_jobs_match_attempts,
    connect,
    grid,
    max_ndvi,
)
from tests.conftest import scratch_udps
from tests.helpers import wait_until

pytestmark = pytest.mark.usefixtures("stop_campaigns")

S = TaskState
QUICK_RETRY = RetryPolicy(backoff_base=0.2, backoff_max=2.0)
"""Backoff short enough that a backend that answers again is tried within seconds."""
OUTAGE_SECONDS = 30.0
"""How long the identity provider stays unreachable in the mid-run test."""
NOBODY_LISTENS = "http://127.0.0.1:9"


def oidc_factory(url: str) -> Callable[[], openeo.Connection]:
    """What `openeo-upscale run` builds for ``auth = "oidc-client-credentials"`` (the demo client)."""
    entry = BackendConfig("local", url, auth=AuthKind.OIDC_CLIENT_CREDENTIALS, provider_id="local")
    return connection_factory(entry, {"OPENEO_LOCAL_CLIENT_ID": DEFAULT_CLIENT_ID,
                                      "OPENEO_LOCAL_CLIENT_SECRET": DEFAULT_CLIENT_SECRET})


def basic_factory(url: str, password: str = "demo") -> Callable[[], openeo.Connection]:
    entry = BackendConfig("local", url)
    return connection_factory(entry, {"OPENEO_LOCAL_USERNAME": "demo", "OPENEO_LOCAL_PASSWORD": password})


def _status_json(store: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", str(store), "--json"]) == 0
    found: dict[str, Any] = json.loads(capsys.readouterr().out)
    return found


# -- classification at the edge ---------------------------------------------------------------------


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} error", response=response)


@pytest.mark.parametrize(("raised", "kind"), [
    (requests.ConnectionError("refused"), TransientError),  # the backend itself does not answer
    (OpenEoApiError(http_status_code=403, code="CredentialsInvalid", message="Credentials are not correct."),
     AuthError),
    (OpenEoApiError(http_status_code=401, code="AuthenticationRequired", message="Unauthorized."), AuthError),
    (OpenEoApiError(http_status_code=503, code="ServiceUnavailable", message="down"), TransientError),
    (_caused(OidcException("Failed to obtain OIDC discovery document"), requests.ConnectionError("x")),
     ProviderUnavailableError),
    (_caused(OidcException("Failed to obtain OIDC discovery document"), requests.Timeout("slow")),
     ProviderUnavailableError),
    (_caused(OidcException("Failed to obtain OIDC discovery document"), _http_error(503)),
     ProviderUnavailableError),
    (_caused(OidcException("Failed to obtain OIDC discovery document"), _http_error(404)), AuthError),
    (OidcException("Failed to retrieve access token at 'https://idp/token': 502 'Bad Gateway' ''"),
     ProviderUnavailableError),
    (OidcException("Failed to retrieve access token at 'https://idp/token': 401 'Unauthorized' "
                   "'{\"error\":\"invalid_client\"}'"), AuthError),
    (OidcDeviceCodePollTimeout("Timeout (300.0s) while polling for access token."), AuthError),
    (OpenEoClientException("Requested OIDC provider 'x' not available. Should be one of ['local']."),
     AuthError),
])
def test_login_failures_are_classified(raised: Exception, kind: type) -> None:
    found = login_error(raised, "cdse")
    assert type(found) is kind, found
    assert found.backend == "cdse" and "cdse" in str(found)
    assert not isinstance(found, PermanentError)  # a task is never failed for its backend's login


def test_a_token_refused_right_after_a_fresh_login_is_an_auth_error(backends: Any) -> None:
    """Tokens that are dead on arrival: the client logs in again once, then gives up with AuthError."""
    dead = backends("dead-tokens", token_ttl=1e-6)  # dead on arrival
    client = BackendClient("dead-tokens", basic_factory(dead.url))
    client.connect()
    with pytest.raises(AuthError, match="a token refused right after a fresh login") as caught:
        client.me()
    assert caught.value.code == "TokenInvalid" and not isinstance(caught.value, TransientError)


# -- the start of a run -------------------------------------------------------------------------------


def test_a_backend_that_cannot_authenticate_is_unusable_and_the_other_runs_everything(
    backends: Any, udp_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = backends("good")
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(4), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("bad", basic_factory(good.url, password="wrong"), parallel_jobs=2, weight=10.0)
        campaign.add_backend("good", connect(good), parallel_jobs=2)
        with caplog.at_level(logging.WARNING, "openeo_upscale"):
            summary = campaign.run()
        assert summary["counts"]["done"] == 4 and summary["counts"]["failed"] == 0
        bad = summary["backends"]["bad"]
        assert bad["state"] == "unusable" and "[403] CredentialsInvalid" in bad["reason"]
        assert bad["jobs"] == 0 and bad["counts"] == {}
        assert summary["backends"]["good"]["state"] == "ready"
        assert summary["backends"]["good"]["validation"] == "valid"
        assert any("backend bad is unusable" in r.getMessage() and "stay pending" in r.getMessage()
                   for r in caplog.records)
        check_jobs_match_attempts(store, campaign, good)


def test_tokens_refused_after_a_fresh_login_stop_the_run_with_tasks_pending(
    backends: Any, udp_dir: Path, tmp_path: Path
) -> None:
    dead = backends("dead-tokens", token_ttl=1e-6)  # dead on arrival
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(3), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("local", basic_factory(dead.url))
        with pytest.raises(NoUsableBackendError, match="right after a fresh login") as caught:
            campaign.run()
        assert set(caught.value.reasons) == {"local"}
        assert store.counts(campaign.id)[S.PENDING] == 3
        assert campaign.summary()["jobs"] == 0  # (the backend's own list cannot be read: no token lives)


# -- an unreachable backend -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["nothing-listens", "every-request-dropped"])
def test_an_unreachable_backend_is_shown_with_since_and_next_try_and_no_task_fails(
    backends: Any, udp_dir: Path, tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = NOBODY_LISTENS if how == "nothing-listens" else backends(
        "dropping", faults=Faults(drop_rate={"*": 1.0})).url
    path = tmp_path / "campaign.sqlite"
    with Store.open(path) as store:
        campaign = Campaign.create(store, grid(3), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL, retry=QUICK_RETRY)
        campaign.add_backend("far", basic_factory(url), parallel_jobs=2)
        campaign.start()
        first = wait_until(lambda: _unreachable(campaign.summary()), "the backend shown unreachable")
        due = time.monotonic() + first["next_try"]
        # A second failed try of the same streak: a new next try, `since` still the first failure's.
        again = wait_until(lambda: _tried_again(campaign, due), "a second try",
                           timeout=QUICK_RETRY.backoff_max + 20)
        assert again["since"] == first["since"]
        assert campaign.running
        for entry in (first, again):
            assert datetime.fromisoformat(entry["since"]) <= store.now()
            assert 0 <= entry["next_try"] <= QUICK_RETRY.backoff_max
            assert "ConnectionError" in entry["reason"]

        status = _status_json(path, capsys)  # what another process reads from the store
        far = status["backends"]["far"]
        assert far["state"] == "unreachable" and far["since"] == first["since"]
        assert isinstance(far["next_try"], int | float) and "ConnectionError" in far["reason"]
        assert main(["status", str(path)]) == 0
        assert "unreachable since" in capsys.readouterr().out

        out = io.StringIO()
        LogMonitor(out).update(campaign.summary())
        assert "backend far unreachable since " in out.getvalue() and ", next try in " in out.getvalue()
        panel = io.StringIO()
        with TerminalMonitor(Console(file=panel, width=200, color_system=None)) as monitor:
            monitor.update(campaign.summary())
        assert "unreachable since" in panel.getvalue()

        counts = store.counts(campaign.id)
        assert counts[S.PENDING] == 3 and counts[S.FAILED] == 0 and counts[S.CREATING] == 0
        assert campaign.stop()


def _unreachable(summary: dict[str, Any], backend: str = "far") -> dict[str, Any]:
    """The backend's summary entry while it is unreachable, else {}."""
    entry: dict[str, Any] = summary["backends"][backend]
    return entry if entry["state"] == "unreachable" else {}


def _tried_again(campaign: Campaign, due: float) -> dict[str, Any]:
    """The entry once a try after ``due`` (monotonic) failed too: its next try is in the future again."""
    entry = _unreachable(campaign.summary()) if time.monotonic() > due else {}
    return entry if entry and entry["next_try"] > 0 else {}


def _summary(**health: Any) -> dict[str, Any]:
    entry = {"counts": {}, "active": 0, "parallel_jobs": 2, "requests": 3, **health}
    return {"campaign": "c", "tasks": 1, "counts": {"pending": 1}, "backends": {"far": entry}, "credits": 0}


def test_the_log_monitor_says_when_trouble_starts_changes_and_ends_and_the_panel_shows_it() -> None:
    out = io.StringIO()
    monitor = LogMonitor(out, every=3600.0)
    since = "2026-12-02T04:12:03+00:00"
    for health in ({"state": "unknown"}, {"state": "ready"},
                   {"state": "unreachable", "reason": "no answer", "since": since, "next_try": 4.0},
                   {"state": "unreachable", "reason": "no answer", "since": since, "next_try": 1.5},
                   {"state": "unreachable", "reason": "HTTP 503", "since": since, "next_try": 8.0},
                   {"state": "ready"}):
        monitor.update(_summary(**health))
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines() if " backend far " in line]
    assert lines == ["backend far unreachable since 04:12:03 UTC, next try in 4.0 s: no answer",
                     "backend far unreachable since 04:12:03 UTC, next try in 8.0 s: HTTP 503",
                     "backend far reachable again"]

    panel = io.StringIO()
    with TerminalMonitor(Console(file=panel, width=200, color_system=None)) as terminal:
        terminal.update(_summary(state="unusable", reason="cannot authenticate: login refused"))
    assert "unusable: cannot authenticate: login refused" in panel.getvalue()


# -- the identity provider goes away during a run ---------------------------------------------------------


def test_an_identity_provider_outage_mid_run_is_waited_out(backends: Any, udp_dir: Path,
                                                           tmp_path: Path) -> None:
    """Tokens live 2 s; the provider stops answering for 30 s while jobs run: every renewal fails
    meanwhile, both through the CLI's connection factory (a new login) and through the client's own
    renewal of an OIDC connection (two campaigns, each with its backend, through the same 30 s);
    each backend is shown unreachable, nothing fails, and both runs finish once the provider is back."""
    reasons = {"factory": "identity provider unavailable",
               "oidc-connection": "the access token could not be renewed"}
    with ExitStack() as stack:
        campaigns, proxies, servers = {}, {}, {}
        for auth in reasons:
            servers[auth] = backends(f"oidc-{auth}", token_ttl=2.0,
                                     simulation=Simulation(time_scale=0.01, queue_seconds=1.0))
            proxies[auth] = stack.enter_context(Proxy(servers[auth].url))
            factory = oidc_factory(proxies[auth].url)
            store = stack.enter_context(Store.open(tmp_path / f"{auth}.sqlite"))
            campaign = Campaign.create(store, grid(6), max_ndvi(udp_dir), defaults=DEFAULTS,
                                       output_dir=tmp_path / f"out-{auth}", polling=POLL, retry=QUICK_RETRY)
            campaign.add_backend("local", factory if auth == "factory" else factory(), parallel_jobs=2)
            stack.callback(campaign.stop)
            campaign.start()
            campaigns[auth] = (store, campaign)
        for _, campaign in campaigns.values():
            wait_until(lambda c=campaign: c.summary()["backends"]["local"]["active"] > 0, "jobs running")

        for proxy in proxies.values():
            proxy.oidc_down.set()
        began = time.monotonic()
        for auth, (_, campaign) in campaigns.items():
            entry = wait_until(lambda c=campaign: _unreachable(c.summary(), "local"),
                               f"the backend shown unreachable ({auth})", timeout=OUTAGE_SECONDS)
            assert reasons[auth] in entry["reason"], auth
        # The outage lasts its full time (that is the scenario); meanwhile the engines stay alive.
        wait_until(lambda: time.monotonic() - began >= OUTAGE_SECONDS
                   or not all(c.running for _, c in campaigns.values()),
                   "the end of the outage", timeout=OUTAGE_SECONDS + 5)
        for auth, (store, campaign) in campaigns.items():
            assert proxies[auth].dropped >= 2, f"the tokens did not need renewing during the outage ({auth})"
            assert campaign.running, f"the scheduler died during the outage ({auth})"
            counts = store.counts(campaign.id)
            assert counts[S.FAILED] == 0 and counts[S.DONE] < 6, auth
        for proxy in proxies.values():
            proxy.oidc_down.clear()

        for auth, (store, campaign) in campaigns.items():
            assert campaign.wait(timeout=120), f"the run did not finish after the outage ({auth})"
            summary = campaign.summary()
            assert summary["counts"]["done"] == 6 and summary["counts"]["failed"] == 0, auth
            assert summary["backends"]["local"]["state"] == "ready", auth
            check_jobs_match_attempts(store, campaign, servers[auth])


# -- validation before the first launch --------------------------------------------------------------------


def _broken_udp(tmp_path: Path, udp_dir: Path) -> Udp:
    """max_ndvi whose reducer calls a process the backend lacks, by a file namespace it can read."""
    document = json.loads((udp_dir / "max_ndvi.json").read_text())
    reducer = document["process_graph"]["reducedimension2"]["arguments"]["reducer"]["process_graph"]
    reducer["max1"]["process_id"] = "no_such_process"
    path = scratch_udps(tmp_path) / "broken.json"
    path.write_text(json.dumps(document))
    return Udp.from_file(path, namespace=str(path))


def test_the_backend_refuses_the_process_graph_before_any_job(backends: Any, udp_dir: Path,
                                                              tmp_path: Path) -> None:
    one = backends("one")
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(3), _broken_udp(tmp_path, udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("one", connect(one))
        with pytest.raises(NoUsableBackendError) as caught:
            campaign.run()
        reason = caught.value.reasons["one"]
        assert "refused the process graph of task" in reason and "no_such_process" in reason
        assert "backend one" in str(caught.value)
        summary = campaign.summary()
        assert summary["backends"]["one"]["state"] == "unusable"
        assert summary["counts"]["pending"] == 3 and summary["jobs"] == 0
    assert backend_jobs(one) == []


def test_a_backend_without_validation_is_noted_and_launched_on(backends: Any, udp_dir: Path, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    one = backends("one")
    with Proxy(one.url) as proxy, Store.open(tmp_path / "campaign.sqlite") as store:
        proxy.hide_validation = True
        campaign = Campaign.create(store, grid(2), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("one", basic_factory(proxy.url))
        with caplog.at_level(logging.WARNING, "openeo_upscale"):
            summary = campaign.run()
        assert summary["counts"]["done"] == 2
        assert summary["backends"]["one"]["validation"] == "no /validation endpoint"
        assert any("has no POST /validation endpoint" in r.getMessage() for r in caplog.records)


# -- several runners ------------------------------------------------------------------------------------


def test_a_backend_given_up_for_its_credentials_goes_to_another_runner(store_target: str) -> None:
    """Runner a cannot log in to x: it records x as unusable and frees its lease; runner b, which may
    use x, takes it at its next heartbeat, and a does not take it back. `status` reads the health."""
    leasing = Leasing(lease_seconds=30.0)
    with Store.open(store_target) as store:
        campaign = store.create_campaign("health", config={"uid": "0123456789ab"})
        a = Leases(store, campaign, ("x", "y"), leasing=leasing, beating=False, exclusive=False)
        b = Leases(store, campaign, ("x",), leasing=leasing, beating=False, exclusive=False)
        a.join()
        b.join()
        assert a.held() == {"x", "y"} and b.held() == frozenset()

        refused = Health(BackendState.UNUSABLE, "cannot authenticate: login refused: [403] ...")
        a.report({"x": refused, "y": Health(BackendState.READY)})
        a.give_up("x")
        assert a.held() == {"y"}
        b.beat()
        a.beat()
        assert b.held() == {"x"} and a.held() == {"y"}
        assert a.runner_id is not None and (mine := store.runner(a.runner_id)) is not None
        assert mine.backends == ["y"]

        recorded = store.backend_health(campaign, live_within=leasing.lease_seconds)
        assert recorded["x"] == (refused.to_dict(), True) and recorded["y"][0]["state"] == "ready"
        a.leave()
        b.leave()
        assert store.backend_health(campaign, live_within=leasing.lease_seconds)["x"][1] is False
