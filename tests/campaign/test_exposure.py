"""What the commands show: never a store's password, and a warning when a server is reachable from
other machines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import openeo_upscale.backend
import openeo_upscale.monitor.dashboard
from openeo_upscale.campaign import Campaign, Store
from openeo_upscale.campaign.store import shown_url
from openeo_upscale.cli import main
from openeo_upscale.grid import tiles
from tests.conftest import ANTWERP_BBOX

SECRET = "s3cr3t-pw"


def _with_password(url: str) -> str:
    """The fixture's URL with a password (the server trusts local connections and ignores it)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{SECRET}@{host}"


@pytest.mark.parametrize("url", [
    f"postgresql://u:{SECRET}@db.example:5432/c",
    f"postgresql+psycopg://u:{SECRET}@db.example/c?sslmode=require",
    f"postgresql://u:{SECRET}@[::1",  # not a URL SQLAlchemy can read
])
def test_shown_url_masks_the_password(url: str) -> None:
    assert SECRET not in shown_url(url)
    assert shown_url("results/campaign.sqlite") == "results/campaign.sqlite"


def test_no_command_prints_the_password(
    postgres_url: str, udp_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = _with_password(postgres_url)
    grid = tiles([ANTWERP_BBOX[k] for k in ("west", "south", "east", "north")], 5000).head(2)
    with Store.open(url) as store:
        Campaign.create(store, grid, udp_dir / "max_ndvi.json", name="c", output_dir=tmp_path / "out",
                        defaults={"temporal_extent": ["2023-05-01", "2023-07-01"]}).close()
    served: list[object] = []
    monkeypatch.setattr(openeo_upscale.monitor.dashboard, "serve", lambda app, **kw: served.append(kw))
    caplog.set_level(logging.DEBUG)
    commands = [["dashboard", url], ["status", url], ["status", url, "--json"], ["store", "upgrade", url],
                ["results", "verify", url], ["export", url, "-o", str(tmp_path / "jobs.csv")],
                ["report", url, "-o", str(tmp_path / "r.html")],
                ["dashboard", url.replace("/upscale_test_", "/no_such_db_")],
                ["status", f"postgresql://u:{SECRET}@127.0.0.1:1/x"]]
    for command in commands:
        main(command)
        out, err = capsys.readouterr()
        assert SECRET not in out + err, command
    assert served, "the dashboard was started"
    assert SECRET not in caplog.text


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                              ("0.0.0.0", True), ("192.168.1.20", True), ("myhost", True)])
def test_a_server_reachable_from_other_machines_warns(
    host: str, warned: bool, postgres_url: str, udp_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(openeo_upscale.monitor.dashboard, "serve", lambda app, **kw: None)
    monkeypatch.setattr(openeo_upscale.backend, "serve", lambda config: None)
    grid = tiles([ANTWERP_BBOX[k] for k in ("west", "south", "east", "north")], 5000).head(1)
    Campaign.create(postgres_url, grid, udp_dir / "max_ndvi.json", name="c", output_dir=tmp_path / "out",
                    defaults={"temporal_extent": ["2023-05-01", "2023-07-01"]}).close()

    assert main(["dashboard", postgres_url, "--host", host]) == 0
    err = capsys.readouterr().err
    assert ("warning: --host" in err and "reachable from other machines" in err
            and "no login" in err) is warned

    assert main(["backend", "serve", "--host", host, "--state-dir", str(tmp_path / "state")]) == 0
    out, err = capsys.readouterr()
    assert ("warning: --host" in err and "reachable from other machines" in err) is warned
    # The built-in demo account only on loopback: elsewhere nobody can log in unless the config names users.
    assert ("basic auth: demo / demo" in out) is not warned
    assert ("accounts: none. The built-in demo account is only enabled on a loopback host" in out) is warned
