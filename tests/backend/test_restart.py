"""The local backend keeps its jobs, results, signed links and tokens across a restart.

A restart stops the `LocalBackend` and starts a new one on the same `state_dir` and port, as a
restarted server keeps its address; links and clients made before it are used unchanged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import openeo
import rasterio
import requests

from openeo_upscale.backend import BackendConfig, LocalBackend, Simulation
from tests.backend.client_helpers import max_ndvi_job, run_to_end, wait_for_status
from tests.conftest import FAST

ANTWERP_EPSG = 32631


def _restart(backend: LocalBackend) -> LocalBackend:
    """Stop `backend` and start a new one with the same settings, state folder and port."""
    port = backend.port
    assert port is not None
    backend.stop()
    return LocalBackend(backend.config, port=port).start()


def test_jobs_results_links_and_tokens_survive_restart(tmp_path: Path, udp_dir: Path) -> None:
    config = BackendConfig(state_dir=tmp_path / "state", udp_dirs=(udp_dir,), simulation=FAST)
    backend = LocalBackend(config).start()
    try:
        basic = openeo.connect(backend.url).authenticate_basic("demo", "demo")
        oidc = openeo.connect(backend.url).authenticate_oidc_client_credentials(
            client_id="openeo-upscale-local", client_secret="demo-secret", provider_id="local")
        done = [run_to_end(max_ndvi_job(basic, f"done {i}")) for i in range(2)]
        waiting = max_ndvi_job(basic, "waiting")
        before = {j["id"]: j["status"] for j in basic.list_jobs()}
        asset = done[0].get_results().get_metadata()["assets"]["openEO.tif"]
        bearer = basic.auth.bearer

        backend = _restart(backend)

        after = {j["id"]: j["status"] for j in basic.list_jobs()}
        assert after == before
        assert after == {done[0].job_id: "finished", done[1].job_id: "finished",
                         waiting.job_id: "created"}
        # the connections made before the restart still authenticate with their tokens
        assert basic.describe_account()["user_id"] == "demo"
        assert oidc.describe_account()["user_id"] == "demo"
        me = requests.get(backend.api_url + "/me", headers={"Authorization": f"Bearer {bearer}"},
                          timeout=10)
        assert me.status_code == 200 and me.json()["user_id"] == "demo"
        # the results download, through the client and through the signed link made before
        path = done[0].get_results().download_file(tmp_path / "after.tif")
        with rasterio.open(path) as dataset:
            assert dataset.crs.to_epsg() == ANTWERP_EPSG
        content = path.read_bytes()
        assert len(content) == asset["file:size"]
        assert asset["file:checksum"] == "1220" + hashlib.sha256(content).hexdigest()
        signed = requests.get(asset["href"], timeout=10)
        assert signed.status_code == 200 and signed.content == content
        # the job created before the restart still runs
        assert run_to_end(waiting).status() == "finished"
    finally:
        backend.stop()


def test_running_job_finishes_after_restart(tmp_path: Path, udp_dir: Path) -> None:
    # about 3.5 s of run time (±20%): long enough to be running across a restart
    simulation = Simulation(time_scale=0.02, queue_seconds=0.0)
    config = BackendConfig(state_dir=tmp_path / "state", udp_dirs=(udp_dir,), simulation=simulation)
    backend = LocalBackend(config).start()
    try:
        connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
        job = max_ndvi_job(connection, "across restart")
        job.start()
        wait_for_status(job, "running")

        backend = _restart(backend)

        assert job.status() == "running"  # it keeps its schedule rather than starting over
        wait_for_status(job, "finished")
        messages = [entry.message for entry in job.logs()]
        assert sum(m.startswith("Job running") for m in messages) == 1
        assert job.get_results().get_metadata()["assets"]["openEO.tif"]["file:size"] > 0
    finally:
        backend.stop()
