"""The campaign commands end to end against the local backend: run, status, retry, cancel, export, import."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import openeo
import pytest
from rich.console import Console

from openeo_upscale.backend import BackendConfig, Faults, LocalBackend
from openeo_upscale.backend.config import JobFailureRule
from openeo_upscale.campaign import Campaign, Store, TaskState
from openeo_upscale.campaign.config import AuthKind, connection_factory, load_campaign
from openeo_upscale.cli import _sigterm_as_interrupt, main
from openeo_upscale.grid import tiles
from openeo_upscale.monitor import LogMonitor, Progress, TerminalMonitor
from tests.conftest import FAST, MAX_NDVI_URL
from tests.helpers import BBOX, PASSWORD_ENV, USER_ENV, campaign_toml, local_backend_jobs


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_ENV, "demo")
    monkeypatch.setenv(PASSWORD_ENV, "demo")


@pytest.fixture
def toml(tmp_path: Path, backend: LocalBackend, udp_dir: Path, credentials: None) -> Path:
    return campaign_toml(tmp_path, backend.url, udp_dir)


@pytest.fixture
def stuck_backend(tmp_path: Path, udp_dir: Path) -> Iterator[LocalBackend]:
    """Every job stays queued: a run never ends by itself."""
    config = BackendConfig(state_dir=tmp_path / "stuck", udp_dirs=(udp_dir,), simulation=FAST,
                           faults=Faults(stuck_rate=1.0, stuck_seconds=3600.0))
    with LocalBackend(config) as running:
        yield running


def _status(store: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", str(store), "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def _interrupt_once_jobs_are_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C, as soon as the monitor sees every task holding a job."""
    real = LogMonitor.update

    def update(self: LogMonitor, summary: Mapping[str, Any], errors: Any = ()) -> None:
        real(self, summary, errors)
        counts = summary["counts"]
        if counts["queued"] + counts["running"] == summary["tasks"]:
            raise KeyboardInterrupt

    monkeypatch.setattr(LogMonitor, "update", update)


# -- run ------------------------------------------------------------------------------------------------


def test_run_status_export_retry(toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = len(tiles(BBOX, 5000))
    assert main(["run", str(toml), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"created campaign 'antwerp' with {expected} tasks" in out
    assert f"done {expected}" in out

    store = toml.parent / "campaign.sqlite"
    status = _status(store, capsys)
    assert status["counts"]["done"] == expected == status["tasks"]
    assert status["backends"]["local"]["counts"] == {"done": expected}
    assert status["credits"] > 0
    assert sorted(p.name for p in (toml.parent / "results").iterdir())  # results beside the TOML

    assert main(["status", str(store)]) == 0
    table = capsys.readouterr().out
    assert "antwerp" in table and "done" in table and "local" in table

    assert main(["export", str(store), "-o", str(toml.parent / "tasks.csv")]) == 0
    with (toml.parent / "tasks.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == expected
    assert {"id", "backend_name", "status", "tile_id", "temporal_extent", "geometry"} <= set(rows[0])
    assert {r["status"] for r in rows} == {"finished"}

    capsys.readouterr()
    assert main(["retry", str(store)]) == 0
    assert "0 task(s) back to pending" in capsys.readouterr().out

    # A second run resumes the campaign: nothing left to do, no new job.
    assert main(["run", str(toml), "--quiet"]) == 0
    assert "resuming campaign 'antwerp'" in capsys.readouterr().out


def test_secrets_are_not_in_the_store(toml: Path, backend: LocalBackend) -> None:
    assert main(["run", str(toml), "--quiet"]) == 0
    stored = b"".join(p.read_bytes() for p in toml.parent.glob("campaign.sqlite*"))
    assert stored  # the store was written ...
    assert b"demo" not in stored  # ... and neither the user name nor the password ("demo") is in it
    assert USER_ENV.encode() not in stored


def test_failed_tasks_exit_1_and_retry_runs_them_again(
    tmp_path: Path, udp_dir: Path, credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    first = str(tiles(BBOX, 5000)["tile_id"].iloc[0])
    config = BackendConfig(state_dir=tmp_path / "backend", udp_dirs=(udp_dir,), simulation=FAST,
                           faults=Faults(job_failures=(JobFailureRule(first, (1,), "Injected: no data"),)))
    with LocalBackend(config) as backend:
        toml = campaign_toml(tmp_path, backend.url, udp_dir)
        assert main(["run", str(toml), "--quiet"]) == 1
        captured = capsys.readouterr()
        assert f"failed: {first}" in captured.out
        assert "not done: failed 1" in captured.err

        store = str(toml.parent / "campaign.sqlite")
        assert _status(Path(store), capsys)["counts"]["failed"] == 1
        assert main(["retry", store, "--state", "failed"]) == 0
        assert "1 task(s) back to pending" in capsys.readouterr().out
        assert main(["run", str(toml), "--quiet"]) == 0  # the second attempt is not injected to fail
    assert _status(Path(store), capsys)["counts"]["failed"] == 0


def test_interrupt_leaves_jobs_running_and_cancel_cancels_them(
    tmp_path: Path, udp_dir: Path, stuck_backend: LocalBackend, credentials: None,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = campaign_toml(tmp_path, stuck_backend.url, udp_dir)
    _interrupt_once_jobs_are_queued(monkeypatch)
    assert main(["run", str(toml), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "left running on their backends" in err and f"openeo-upscale run {toml}` again" in err

    store = toml.parent / "campaign.sqlite"
    status = _status(store, capsys)
    assert status["counts"]["queued"] == status["tasks"] > 0
    con = openeo.connect(stuck_backend.url).authenticate_basic("demo", "demo")
    assert {job["status"] for job in con.list_jobs()} == {"queued"}

    assert main(["cancel", str(store), "--config", str(toml)]) == 0
    assert f"canceled {status['tasks']} task(s)" in capsys.readouterr().out
    assert _status(store, capsys)["counts"]["canceled"] == status["tasks"]
    assert {job["status"] for job in con.list_jobs()} == {"canceled"}
    # Canceled tasks are not done: a run ends at once, with exit code 1.
    monkeypatch.undo()
    monkeypatch.setenv(USER_ENV, "demo")
    monkeypatch.setenv(PASSWORD_ENV, "demo")
    assert main(["run", str(toml), "--quiet"]) == 1


def test_cancel_on_exit_cancels_the_jobs(
    tmp_path: Path, udp_dir: Path, stuck_backend: LocalBackend, credentials: None,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = campaign_toml(tmp_path, stuck_backend.url, udp_dir)
    _interrupt_once_jobs_are_queued(monkeypatch)
    assert main(["run", str(toml), "--quiet", "--cancel-on-exit"]) == 130
    assert "canceled" in capsys.readouterr().err
    status = _status(toml.parent / "campaign.sqlite", capsys)
    assert status["counts"]["canceled"] == status["tasks"]
    con = openeo.connect(stuck_backend.url).authenticate_basic("demo", "demo")
    assert {job["status"] for job in con.list_jobs()} == {"canceled"}


def test_sigterm_stops_like_ctrl_c() -> None:
    with pytest.raises(KeyboardInterrupt), _sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes of the main thread
            pass
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_dry_run_writes_nothing_and_starts_no_job(
    tmp_path: Path, udp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = campaign_toml(tmp_path, "http://127.0.0.1:9", udp_dir)  # nothing listens there; no secrets set
    assert main(["run", str(toml), "--dry-run"]) == 0
    out = capsys.readouterr().out
    grid = tiles(BBOX, 5000)
    assert f"{len(grid)} tasks, {grid['area_km2'].sum():,.1f} km²" in out
    assert "parameters valid for every task" in out
    assert not list(tmp_path.glob("campaign.sqlite*"))


def _campaigns(store: Path) -> list[str]:
    """The names of the campaigns in a store (none where `run` did not even open it)."""
    if not store.exists():
        return []
    with Store.open(store) as opened:
        return [c["name"] for c in opened.campaigns()]


def test_an_invalid_date_is_refused_before_any_job(
    tmp_path: Path, backend: LocalBackend, udp_dir: Path, credentials: None,
    capsys: pytest.CaptureFixture[str]
) -> None:
    toml = campaign_toml(tmp_path, backend.url, udp_dir)
    toml.write_text(toml.read_text().replace('temporal_extent = [2023-05-01, "2023-07-01"]',
                                             'temporal_extent = ["2023-13-45", "yesterday"]'))
    for args in (["run", str(toml), "--dry-run"], ["run", str(toml)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "tasks have invalid parameters" in err
        assert "parameter 'temporal_extent' breaks rule 'anyOf'" in err
        assert "\"2023-13-45\" fits none of" in err and "is not a 'date'" in err
        assert "task 32631_" in err  # the task is named
    assert local_backend_jobs(backend) == []
    assert _campaigns(tmp_path / "campaign.sqlite") == []


@pytest.mark.parametrize("bad", ["../../x", "/abs", "..", "a b", "tile/1"])
def test_a_hostile_tile_id_is_refused_before_any_job(
    tmp_path: Path, backend: LocalBackend, udp_dir: Path, credentials: None, bad: str,
    capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tiles(BBOX, 5000).head(3)
    grid.loc[grid.index[1], "tile_id"] = bad
    grid.to_file(tmp_path / "tiles.geojson", driver="GeoJSON")
    toml = campaign_toml(tmp_path, backend.url, udp_dir)
    text = toml.read_text()
    grid_table = text[text.index("[grid]"):text.index("[udp]")]
    toml.write_text(text.replace(grid_table, "").replace('output_dir = "results"',
                                                         'output_dir = "results"\ntiles = "tiles.geojson"'))
    for args in (["run", str(toml), "--dry-run"], ["run", str(toml)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "1 tile ids are not safe folder names" in err and repr(bad) in err
    assert local_backend_jobs(backend) == []
    assert _campaigns(tmp_path / "campaign.sqlite") == []
    assert not (tmp_path / "results").exists()


def test_job_options_from_the_toml_a_backend_and_a_tile_reach_the_backend(
    tmp_path: Path, backend: LocalBackend, udp_dir: Path, credentials: None
) -> None:
    grid = tiles(BBOX, 5000).head(3)
    special = str(grid["tile_id"].iloc[0])
    grid["job_options"] = [json.dumps({"executor-memory": "8g", "tile-only": 1}), None, None]
    grid.to_file(tmp_path / "tiles.geojson", driver="GeoJSON")
    toml = campaign_toml(tmp_path, backend.url, udp_dir,
                         backend_extra='job_options = { executor-memory = "4g", queue = "fast" }')
    text = toml.read_text()
    text = text.replace(text[text.index("[grid]"):text.index("[udp]")], "")
    text = text.replace('output_dir = "results"', 'output_dir = "results"\ntiles = "tiles.geojson"')
    toml.write_text(text + '\n[job_options]\nexecutor-memory = "2g"\npython-memory = "1g"\n')
    assert main(["run", str(toml), "--quiet"]) == 0

    connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
    seen = {}
    for job in connection.list_jobs():
        metadata = connection.job(job["id"]).describe()
        seen[metadata["title"].split()[1]] = metadata.get("job_options")
    common = {"executor-memory": "4g", "python-memory": "1g", "queue": "fast"}
    own = {"executor-memory": "8g", "tile-only": 1}
    assert seen == {tile: dict(common, **(own if tile == special else {})) for tile in grid["tile_id"]}


# -- configuration ----------------------------------------------------------------------------------------


def test_unknown_keys_are_refused_by_name(
    tmp_path: Path, udp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = campaign_toml(tmp_path, "http://127.0.0.1:9", udp_dir, backend_extra="parallel_jobz = 3")
    assert main(["run", str(toml)]) == 2
    err = capsys.readouterr().err
    assert "parallel_jobz" in err and "[[backends]] local" in err and str(toml) in err

    toml = campaign_toml(tmp_path, "http://127.0.0.1:9", udp_dir, extra='stor = "x.sqlite"')
    assert main(["run", str(toml), "--dry-run"]) == 2
    assert "unknown setting(s) stor" in capsys.readouterr().err


def test_a_missing_secret_is_named_before_anything_is_written(
    tmp_path: Path, udp_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setenv(USER_ENV, "demo")
    toml = campaign_toml(tmp_path, "http://127.0.0.1:9", udp_dir)
    assert main(["run", str(toml)]) == 2
    assert PASSWORD_ENV in capsys.readouterr().err
    assert not list(tmp_path.glob("campaign.sqlite*"))


def test_config_paths_are_relative_to_the_toml_and_env_names_default_per_backend(
    tmp_path: Path, udp_dir: Path
) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.toml"
    path.write_text(f"""
store = "s.sqlite"
tiles = "tiles.geojson"
[udp]
file = {json.dumps(str(udp_dir / "max_ndvi.json"))}
[limits]
max_credits = 5
[[backends]]
name = "eu-west"
url = "http://127.0.0.1:9"
[[backends]]
name = "oidc"
url = "https://example.invalid"
auth = "oidc-client-credentials"
provider_id = "local"
""")
    config = load_campaign(path)
    assert config.store == str(tmp_path / "sub" / "s.sqlite")
    assert config.tiles == tmp_path / "sub" / "tiles.geojson"
    assert config.output_dir == tmp_path / "sub" / "campaign-results"
    assert config.limits.max_credits == 5
    basic, oidc = config.backends
    assert basic.auth is AuthKind.BASIC
    assert basic.env_name("password") == "OPENEO_EU_WEST_PASSWORD"
    assert oidc.env_name("client_secret") == "OPENEO_OIDC_CLIENT_SECRET"
    with pytest.raises(Exception, match="OPENEO_OIDC_CLIENT_ID, OPENEO_OIDC_CLIENT_SECRET"):
        connection_factory(oidc, {})


def test_oidc_client_credentials_factory_authenticates(backend: LocalBackend, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"""
store = "s.sqlite"
[[backends]]
name = "local"
url = "{backend.url}"
auth = "oidc-client-credentials"
provider_id = "local"
""")
    (entry,) = load_campaign(path).backends
    from openeo_upscale.backend.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    connect = connection_factory(entry, {"OPENEO_LOCAL_CLIENT_ID": DEFAULT_CLIENT_ID,
                                         "OPENEO_LOCAL_CLIENT_SECRET": DEFAULT_CLIENT_SECRET})
    assert connect().describe_account()["user_id"] == "demo"


# -- import -----------------------------------------------------------------------------------------------


def test_import_creates_a_campaign_from_a_job_table(
    tmp_path: Path, udp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tiles(BBOX, 5000)
    source = tmp_path / "source.sqlite"
    with Campaign.create(source, grid, udp_dir / "max_ndvi.json", namespace=MAX_NDVI_URL,
                         defaults={"temporal_extent": ["2023-05-01", "2023-07-01"]}):
        pass
    table = tmp_path / "tasks.csv"
    assert main(["export", str(source), "-o", str(table)]) == 0

    store = tmp_path / "imported.sqlite"
    assert main(["import", str(table), "--store", str(store), "--udp", str(udp_dir / "max_ndvi.json"),
                 "--namespace", MAX_NDVI_URL, "--name", "again"]) == 0
    assert f"created campaign 'again' with {len(grid)} task(s)" in capsys.readouterr().out
    with Campaign.open(store) as campaign:
        assert campaign.name == "again"
        tasks = campaign.tasks()
    assert sorted(tasks["tile_id"]) == sorted(grid["tile_id"])
    assert set(tasks["state"]) == {TaskState.PENDING.value}
    assert all(p["temporal_extent"] == ["2023-05-01", "2023-07-01"] for p in tasks["parameters"])
    assert _status(store, capsys)["counts"]["pending"] == len(grid)


# -- monitor ----------------------------------------------------------------------------------------------


SUMMARY: dict[str, Any] = {
    "campaign": "antwerp",
    "tasks": 10,
    "counts": {s.value: 0 for s in TaskState} | {"done": 4, "running": 2, "pending": 3, "failed": 1},
    "backends": {"local": {"counts": {"done": 4, "running": 2, "failed": 1}, "active": 2,
                           "parallel_jobs": 4, "requests": 31}},
    "credits": 2.5,
}


def test_progress_measures_throughput_and_eta_with_a_given_clock() -> None:
    now = [0.0]
    progress = Progress(clock=lambda: now[0])
    progress.add({**SUMMARY, "counts": {**SUMMARY["counts"], "done": 1}})
    assert progress.per_minute is None and progress.eta(SUMMARY) is None
    now[0] = 60.0
    progress.add(SUMMARY)
    assert progress.per_minute == pytest.approx(3.0)
    assert progress.eta(SUMMARY) == pytest.approx(100.0)  # 5 tasks left at 3 a minute


def test_terminal_monitor_renders_states_backends_and_errors() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with TerminalMonitor(console) as monitor:
        monitor.update(SUMMARY, ["32631_590000_5660000_5000 [failed, local, j-1]: Injected failure"])
    text = out.getvalue()
    for expected in ("campaign antwerp: 10 tasks", "running", "local", "2/4", "credits", "2.50",
                     "last errors", "Injected failure"):
        assert expected in text


def test_log_monitor_prints_a_line_only_when_something_changed() -> None:
    out = io.StringIO()
    now = [0.0]
    monitor = LogMonitor(out, clock=lambda: now[0], every=60.0)
    monitor.update(SUMMARY)
    now[0] = 1.0
    monitor.update(SUMMARY)
    assert len(out.getvalue().splitlines()) == 1
    assert "done 4" in out.getvalue() and "active local 2/4" in out.getvalue()
    monitor.update(SUMMARY, ["tile x: broken"])
    assert "error: tile x: broken" in out.getvalue()


def test_monitors_say_why_the_run_is_waiting() -> None:
    full = {**SUMMARY,
            "blocked": "disk full at /data/out: 3 download(s) waiting since 2026-12-02 05:00:00 UTC"}
    out = io.StringIO()
    with TerminalMonitor(Console(file=out, force_terminal=True, width=200, color_system=None)) as panel:
        panel.update(full)
    assert "waiting: disk full at /data/out: 3 download(s) waiting" in out.getvalue()
    out = io.StringIO()
    monitor = LogMonitor(out, every=60.0)
    monitor.update(full)
    monitor.update(full)
    monitor.update(SUMMARY)
    lines = out.getvalue().splitlines()
    assert sum("waiting: disk full at /data/out" in line for line in lines) == 1
    assert any(line.endswith("no longer waiting") for line in lines)


def test_the_readme_cdse_example_loads_and_dry_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The TOML the README shows for Copernicus Data Space is valid, and --dry-run needs no login."""
    path = Path(__file__).resolve().parents[1] / "examples" / "cdse-antwerp.toml"
    config = load_campaign(path)
    assert config.name == "antwerp-bap" and [b.auth for b in config.backends] == [AuthKind.OIDC]
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "9 tasks" in capsys.readouterr().out.replace(",", "")
