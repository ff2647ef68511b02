"""Results as real backends answer them: assets in linked items, an asset that cannot be served, a
download retried on its own, a full disk. Every case runs against local backends over HTTP."""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openeo_upscale.backend import ResultsLayout, Simulation
from openeo_upscale.backend.config import Faults
from openeo_upscale.campaign import Campaign, CampaignError, Polling, Store, TaskState
from openeo_upscale.campaign.asset_fetch import sha256_of
from openeo_upscale.campaign.catalog import load_collection
from openeo_upscale.campaign.mosaic import verify_results
from openeo_upscale.cli import main
from tests.campaign.conftest import BRISK, QUICK
from tests.campaign.team import backend_jobs, connect, max_ndvi
from tests.campaign.team import grid as team_grid
from tests.helpers import wait_until

S = TaskState
POLL = Polling(min_interval=0.1, max_interval=0.5)
DEFAULTS = {"temporal_extent": ["2023-05-01", "2023-07-01"]}
TWO_ASSETS = Simulation(time_scale=QUICK.time_scale, queue_seconds=QUICK.queue_seconds,
                        assets=("openEO.tif", "openEO_2.tif"))
BRISK_TWO_ASSETS = Simulation(time_scale=BRISK.time_scale, queue_seconds=BRISK.queue_seconds,
                              assets=TWO_ASSETS.assets)


def grid(count: int) -> Any:
    """Tiles as a frame of its own, to add columns to."""
    return team_grid(count).copy()


def test_200_tasks_with_results_as_linked_items(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    """Collections without assets, each file in its own item, one item link per page."""
    one = backends("one", simulation=BRISK_TWO_ASSETS, results_layout=ResultsLayout.ITEMS, items_per_page=1)
    two = backends("two", simulation=BRISK_TWO_ASSETS, results_layout=ResultsLayout.ITEMS, items_per_page=1)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(200), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("one", connect(one), parallel_jobs=3)
        campaign.add_backend("two", connect(two), parallel_jobs=2)
        summary = campaign.run()

        assert summary["counts"]["done"] == 200, summary
        assert verify_results(store, campaign.id) == []
        items = list(load_collection(Path(summary["collection"])).get_items(recursive=True))
        assert len(items) == 200
        assert all(sorted(item.assets) == ["openEO.tif", "openEO_2.tif"] for item in items)
        for task in store.all_tasks(campaign.id):
            folder = Path(task.result_paths[0]).parent
            assert sorted(p.name for p in (folder / "items").iterdir()) == ["item-0.json", "item-1.json"]
        jobs = [job for backend in (one, two) for job in backend_jobs(backend)]
        assert len(jobs) == 200  # one job per task, none again


def _pinned(count: int, backend_of: dict[int, str]) -> Any:
    frame = grid(count)
    frame["backend"] = [backend_of.get(index, "good") for index in range(count)]
    return frame


@pytest.mark.parametrize(("status", "reason"), [(500, "HTTP 500 3 times"), (404, "HTTP 404")])
def test_an_asset_that_always_fails_fails_its_task_quickly_and_the_rest_is_fetched(
    backends: Any, udp_dir: Path, tmp_path: Path, status: int, reason: str
) -> None:
    broken = backends("broken", simulation=TWO_ASSETS, faults=Faults(asset_errors={"openEO_2.tif": status}))
    good = backends("good", simulation=TWO_ASSETS)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, _pinned(6, {0: "broken"}), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("broken", connect(broken), parallel_jobs=2)
        campaign.add_backend("good", connect(good), parallel_jobs=2)
        summary = campaign.run()

        assert summary["counts"]["done"] == 5 and summary["counts"]["failed"] == 1, summary
        (task,) = store.tasks_in(campaign.id, S.FAILED)
        assert task.error == f"1 of 2 result asset(s) cannot be downloaded: 'openEO_2.tif': {reason}"
        events = store.events_of(task.id)
        finished = min(e.at for e in events if e.to_state is S.FINISHED)
        failed = max(e.at for e in events if e.to_state is S.FAILED)
        assert (failed - finished).total_seconds() < 120
        good_file = Path(campaign.output_dir) / task.tile_id / "openEO.tif"
        (job,) = backend_jobs(broken)
        checksum = connect(broken).job(job["id"]).get_results().get_metadata()["assets"]["openEO.tif"][
            "file:checksum"]
        assert "1220" + sha256_of(good_file) == checksum
        assert not (Path(campaign.output_dir) / task.tile_id / "openEO_2.tif").exists()


def test_retry_downloads_fetches_again_without_a_new_job(
    backends: Any, udp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "backend-shared"
    failing = backends("failing", state_dir=state, faults=Faults(asset_errors={"openEO.tif": 403}))
    store_path = tmp_path / "campaign.sqlite"
    with Store.open(store_path) as store:
        campaign = Campaign.create(store, grid(3), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("local", connect(failing), parallel_jobs=3)
        assert campaign.run()["counts"]["failed"] == 3
    failing.stop()
    healed = backends("healed", state_dir=state)  # the same state: the same jobs, now served
    jobs_before = backend_jobs(healed)

    assert main(["retry", str(store_path), "--downloads"]) == 0
    assert "3 failed download(s) back to finished" in capsys.readouterr().out
    with Store.open(store_path) as store:
        campaign = Campaign.open(store)
        assert store.counts(campaign.id)[S.FINISHED] == 3
        campaign.add_backend("local", connect(healed), parallel_jobs=3)
        summary = campaign.run()
        assert summary["counts"]["done"] == 3, summary
        assert verify_results(store, campaign.id) == []
        assert all(task.attempts == 1 for task in store.all_tasks(campaign.id))
    assert backend_jobs(healed) == jobs_before and len(jobs_before) == 3


# -- a full disk ------------------------------------------------------------------------------------------


class SmallDisk:
    """A results folder on a file system that can be filled and freed: a 64 MiB tmpfs (where this
    machine lets the test mount one), or ENOSPC injected at the file layer (`open`)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, *, tmpfs: bool) -> None:
        self.root = root
        self.root.mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(root)]
        self.mounted = (tmpfs and os.geteuid() == 0
                        and subprocess.run(mount, capture_output=True).returncode == 0)
        self._full = threading.Event()
        if tmpfs and not self.mounted:
            pytest.skip("cannot mount a tmpfs here (needs root and the right to mount); the simulated "
                        "full disk runs instead")
        if not self.mounted:
            real_open = io.open
            disk = self

            def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
                if (disk._full.is_set() and any(c in mode for c in "wax") and isinstance(file, str | Path)
                        and Path(file).is_relative_to(disk.root)):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
                return real_open(file, mode, *args, **kwargs)

            # Path.open and pystac both end in io.open (the builtin open).
            monkeypatch.setattr(io, "open", open_)
            monkeypatch.setattr(builtins, "open", open_)

    def fill(self) -> None:
        if self.mounted:
            with (self.root / "filler").open("wb", buffering=0) as file:
                for size in (1 << 20, 4096, 1):  # to the last byte: not even an item.json fits
                    try:
                        while True:
                            file.write(b"\0" * size)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
        self._full.set()

    def free(self) -> None:
        (self.root / "filler").unlink(missing_ok=True)
        self._full.clear()

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=False)


@pytest.fixture(params=["tmpfs", "simulated"])
def small_disk(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[SmallDisk]:
    disk = SmallDisk(tmp_path / "disk", monkeypatch, tmpfs=request.param == "tmpfs")
    try:
        yield disk
    finally:
        disk.close()


def test_a_full_disk_fails_no_task_and_downloads_resume_when_space_returns(
    backends: Any, udp_dir: Path, tmp_path: Path, small_disk: SmallDisk
) -> None:
    local = backends("local")
    output = small_disk.root / "out"
    output.mkdir()
    small_disk.fill()
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(12), max_ndvi(udp_dir), defaults=DEFAULTS, output_dir=output,
                                   polling=POLL)
        campaign.add_backend("local", connect(local), parallel_jobs=4)
        campaign.start()
        try:
            def waiting_on_the_disk() -> bool:
                summary = campaign.summary()
                counts = summary["counts"]
                return (counts["finished"] + counts["downloading"] == 12 and summary["blocked"] is not None
                        and "disk full at" in summary["blocked"])

            wait_until(waiting_on_the_disk, "every download waiting on the full disk", timeout=60)
            summary = campaign.summary()
            assert summary["counts"]["failed"] == 0
            assert "download(s) waiting" in summary["blocked"]
            small_disk.free()
            assert campaign.wait(timeout=120)
        finally:
            campaign.stop()
        summary = campaign.summary()
        assert summary["counts"]["done"] == 12 and summary["blocked"] is None, summary
        assert len(list(load_collection(campaign.collection()).get_items(recursive=True))) == 12
        assert verify_results(store, campaign.id) == []
        assert all(task.attempts == 1 for task in store.all_tasks(campaign.id))
        reasons = [e.reason or "" for t in store.all_tasks(campaign.id) for e in store.events_of(t.id)]
        assert any(reason.startswith("waiting for the disk: No space left on device") for reason in reasons)
    assert len(backend_jobs(local)) == 12  # no job again


def test_a_catalogue_write_on_a_full_disk_is_a_campaign_error(
    backends: Any, udp_dir: Path, tmp_path: Path, small_disk: SmallDisk
) -> None:
    local = backends("local")
    output = small_disk.root / "out"
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(2), max_ndvi(udp_dir), defaults=DEFAULTS, output_dir=output,
                                   polling=POLL)
        campaign.add_backend("local", connect(local), parallel_jobs=2)
        assert campaign.run()["counts"]["done"] == 2
        (output / "collection.json").unlink()
        for child in output.iterdir():
            if child.is_dir():
                shutil.rmtree(child / "items", ignore_errors=True)
        small_disk.fill()
        with pytest.raises(CampaignError, match=r"cannot write the STAC collection.*No space left on device"):
            campaign.collection()
