"""The `openeo-upscale` command: `backend serve` in a real process, and `demo`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import openeo
import pytest
import rasterio

from openeo_upscale.cli import main
from tests.helpers import free_port


def test_backend_serve_prints_url_and_credentials(tmp_path: Path, udp_dir: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openeo_upscale.cli",
            "backend",
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path / "state"),
            "--udp-dir",
            str(udp_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(5)]
        assert f"http://127.0.0.1:{port}" in banner[0]
        assert any("demo / demo" in line for line in banner)
        deadline = time.monotonic() + 30
        while True:  # the banner is printed before uvicorn binds: wait for the port
            try:
                con = openeo.connect(f"http://127.0.0.1:{port}").authenticate_basic("demo", "demo")
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert con.describe_account()["user_id"] == "demo"
        assert "SENTINEL2_L2A" in con.list_collection_ids()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        if proc.stdout:
            proc.stdout.close()
    assert (tmp_path / "state" / "backend.sqlite").exists()


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "backend.toml"
    cfg.write_text("run_slotz = 3\n")
    assert main(["backend", "serve", "--config", str(cfg)]) == 2
    assert "run_slotz" in capsys.readouterr().err


def test_demo_runs_the_reference_pipeline_on_two_tiles(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`make demo`'s pipeline, cut to two tiles: real BAP jobs, downloads, mosaic, quick-look, report."""
    assert main(["demo", "-o", str(tmp_path), "--max-tiles", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "all 2 tiles done" in out
    assert f"dashboard:  openeo-upscale dashboard {tmp_path.resolve() / 'campaign.sqlite'}" in out
    mosaic = tmp_path / "mosaic"
    for month in ("2023-05-01", "2023-06-01"):
        assert (mosaic / f"openEO_{month}Z.png").is_file()
        for band in ("B04", "B03", "B02"):
            with rasterio.open(mosaic / f"openEO_{month}Z_{band}.tif") as ds:
                assert ds.crs.to_epsg() == 32631 and ds.res == (10.0, 10.0)
                data = ds.read(1, masked=True)
                # Two abutting 5 km tiles: one seamless raster of 1000 x 500 pixels, mostly valid.
                assert sorted(ds.shape) == [500, 1000]
                assert data.count() > 0.9 * data.size
    assert (tmp_path / "report.html").is_file()
    assert (tmp_path / "results" / "collection.json").is_file()
    # The June composite beside a raw cloudy scene: the composite clears what the scene has.
    assert (mosaic / "composite-and-scene.png").is_file()
    shares = re.search(r"composite has ([\d.]+)% cloud or shadow, the raw scene .* beside it ([\d.]+)%",
                       out)
    assert shares is not None, out
    assert float(shares[1]) < 1.0 and float(shares[2]) > 20.0
