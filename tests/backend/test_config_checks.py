"""The backend TOML is checked when it is read: a value that cannot work is refused with its
key named, before a backend starts that would leave campaigns hanging with no reason given."""

from __future__ import annotations

from pathlib import Path

import pytest

from openeo_upscale.backend import LocalBackend, load_config
from openeo_upscale.backend.config import Mode
from openeo_upscale.cli import EXIT_ERROR, main
from openeo_upscale.errors import ConfigError

BAD = [
    ("run_slots = 0", "run_slots must be a number ≥ 1, not 0"),
    ("run_slots = -1", "run_slots must be a number ≥ 1, not -1"),
    ("run_slots = 'two'", "run_slots must be a number ≥ 1, not 'two'"),
    ("queue_limit = 0", "queue_limit must be a number ≥ 1"),
    ("items_per_page = 0", "items_per_page must be a number ≥ 1"),
    ("token_ttl = 0", "token_ttl must be a number > 0, not 0"),
    ("job_time_limit = -5", "job_time_limit must be a number > 0"),
    ("namespace_timeout = 0", "namespace_timeout must be a number > 0"),
    ("max_request_mb = 0", "max_request_mb must be a number > 0"),
    ("credits_per_job = -1", "credits_per_job must be a number ≥ 0"),
    ("port = 70000", "port must be between 0 and 65535"),
    ("mode = 'fast'", "mode must be one of simulated, real, not 'fast'"),
    ("allow_remote_namespaces = 'yes'", "allow_remote_namespaces must be true or false"),
    ("[simulation]\ntime_scale = -1", "[simulation] time_scale must be a number > 0, not -1"),
    ("[simulation]\ntime_scale = 0", "[simulation] time_scale must be a number > 0, not 0"),
    ("[simulation]\njitter = 1.5", "[simulation] jitter must be a share ≥ 0 and < 1"),
    (
        "[faults]\nhttp_error_rate = {'*' = 5}",
        "[faults] http_error_rate['*'] must be a share between 0 and 1",
    ),
    ("[faults]\njob_failure_rate = -0.1", "[faults] job_failure_rate must be a share between 0 and 1"),
    (
        "[faults]\nasset_errors = {'a.tif' = 200}",
        "[faults] asset_errors['a.tif'] must be an HTTP error status",
    ),
    ("[faults.rate_limit]\ncapacity = 0", "[faults.rate_limit] capacity must be a number ≥ 1"),
    (
        "[[faults.job_failures]]\nmatch = 'x'\nattempts = [0]",
        "[[faults.job_failures]] attempts must be a number ≥ 1",
    ),
    ("[[users]]\nname = 'a'\nrun_slots = 0", "[[users]] a: run_slots must be a number ≥ 1"),
    ("[[users]]\nname = 'a'\n[[users]]\nname = 'a'", "[[users]] names must be distinct: a more than once"),
]


@pytest.mark.parametrize(("toml", "message"), BAD, ids=[t.replace("\n", " ") for t, _ in BAD])
def test_a_setting_that_cannot_work_is_refused_with_its_key_named(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "backend.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)


def test_serve_stops_on_a_bad_setting_before_it_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "backend.toml"
    path.write_text("run_slots = 0\n")
    assert (
        main(["backend", "serve", "--config", str(path), "--state-dir", str(tmp_path / "state")])
        == EXIT_ERROR
    )
    out, err = capsys.readouterr()
    assert "run_slots must be a number ≥ 1, not 0" in err and "local backend" not in out


def test_good_settings_still_load(tmp_path: Path) -> None:
    path = tmp_path / "backend.toml"
    path.write_text(
        "run_slots = 1\ntoken_ttl = 0.5\nallow_remote_namespaces = true\n"
        "[simulation]\ntime_scale = 0.001\njitter = 0\n[faults]\nhttp_error_rate = {'*' = 1.0}\n"
    )
    config = load_config(path)
    assert (config.run_slots, config.token_ttl, config.allow_remote_namespaces) == (1, 0.5, True)
    assert config.faults.http_error_rate == {"*": 1.0} and config.simulation.time_scale == 0.001


def test_local_backend_takes_the_mode_as_a_string_and_names_the_choices() -> None:
    assert LocalBackend(mode="real").config.mode is Mode.REAL
    with pytest.raises(ValueError, match="mode must be one of simulated, real, not 'fast'"):
        LocalBackend(mode="fast")
