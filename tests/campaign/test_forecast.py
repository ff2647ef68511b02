"""Knowing the cost before paying it: the pilot's choice of tiles, the models behind the forecast,
and a whole 200-tile campaign against what its 8-tile pilot forecast."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
import shapely.affinity

from openeo_upscale.backend import Simulation
from openeo_upscale.campaign import Campaign, Limits, Polling, Store, TaskState, Udp
from openeo_upscale.campaign.forecast import extent_km2, fit, of_campaign, schedule
from openeo_upscale.campaign.pilot import choose
from openeo_upscale.grid import tiles
from tests.campaign.team import backend_jobs, connect
from tests.conftest import BAP_URL

S = TaskState
POLL = Polling(min_interval=0.05, max_interval=0.3)
TEMPORAL = ["2023-05-01", "2023-07-01"]
# Jobs whose cost and time depend on the area they load: a 25 km² tile over two months runs
# 60 + 10 * 25 + 30 * 2 = 370 simulated seconds (4.4 s), a small edge part about 130 (1.6 s). Long
# enough that the scheduler's own time per job (tens of milliseconds, more on a loaded machine)
# stays a small part of the makespan.
AREA_COST = Simulation(time_scale=0.012, queue_seconds=1.0, seconds_per_km2=10.0)
SLOTS = 12
"""Per backend, two of them: the 192 tasks after the pilot run in about 8 waves."""


def uneven_tiles(count: int = 200) -> Any:
    """``count`` 5 km tiles of an ellipse across the UTM zones 31 and 32, clipped to it: the edge
    tiles are parts of a tile."""
    aoi = shapely.affinity.scale(shapely.Point(6.0, 50.8).buffer(0.5), 1.0, 0.63)
    found = tiles(aoi, 5000, clip=True)
    assert len(found) >= count
    return found.head(count)


def bap(udp_dir: Path) -> Udp:
    """bap_composite takes its area as GeoJSON: an edge tile's job loads only its part."""
    return Udp.from_file(udp_dir / "bap_composite.json", namespace=BAP_URL)


# -- the pieces -----------------------------------------------------------------------------------


def test_fit_finds_a_start_fee_and_a_rate_and_never_goes_below_zero() -> None:
    sizes = [5.0, 10.0, 25.0, 50.0]
    assert fit(sizes, [2 + 0.5 * x for x in sizes]) == pytest.approx((2.0, 0.5))
    a, b = fit(sizes, [10.0, 9.0, 8.0, 7.0])  # cheaper when larger: no negative rate
    assert b == 0.0 and a == pytest.approx(8.5)
    assert fit([50.0, 50.0], [10.0, 12.0]) == pytest.approx((0.0, 11.0 / 50))  # one size: by area


def test_the_schedule_fills_each_slot_that_frees_first() -> None:
    assert schedule([1.0] * 8, [2, 2]) == pytest.approx(2.0)
    assert schedule([3.0, 1.0, 1.0, 1.0], [2]) == pytest.approx(3.0)
    assert schedule([], [4]) == 0.0


def test_the_pilot_covers_every_zone_whole_and_partial_tiles_and_the_whole_area(tmp_path: Path,
                                                                               udp_dir: Path) -> None:
    with Campaign.create(tmp_path / "c.sqlite", uneven_tiles(), bap(udp_dir),
                         defaults={"temporal_extent": TEMPORAL}) as campaign:
        tasks = list(campaign.store.all_tasks(campaign.id))
        picked = choose(tasks, 8)
        assert [t.id for t in picked] == [t.id for t in choose(tasks, 8)]  # deterministic
        assert len(picked) == 8
        largest = max(extent_km2(t) for t in tasks)
        kinds = Counter((t.epsg, extent_km2(t) >= 0.98 * largest) for t in picked)
        assert set(kinds) == {(32631, True), (32632, True), (32631, False), (32632, False)}, kinds
        # Spread: the picks reach out over most of the ellipse, not one corner of it.
        def span(chosen: list[Any], axis: str) -> float:
            values = [getattr(shapely.from_wkt(t.geometry).centroid, axis) for t in chosen]
            return max(values) - min(values)

        for axis in ("x", "y"):
            assert span(picked, axis) >= 0.6 * span(tasks, axis), axis
        # Asking for more later keeps the first ones.
        assert {t.id for t in campaign.pilot_tasks(4)} <= {t.id for t in campaign.pilot_tasks(8)}


# -- a whole campaign against its pilot's forecast ------------------------------------------------


@pytest.mark.slow
def test_a_pilot_of_8_forecasts_a_200_tile_campaign(tmp_path: Path, udp_dir: Path, backends: Any) -> None:
    one = backends("one", run_slots=SLOTS, simulation=AREA_COST)
    two = backends("two", run_slots=SLOTS, simulation=AREA_COST)
    with Campaign.create(tmp_path / "c.sqlite", uneven_tiles(), bap(udp_dir), polling=POLL,
                         defaults={"temporal_extent": TEMPORAL}, output_dir=tmp_path / "out") as campaign:
        campaign.add_backend("one", connect(one), parallel_jobs=SLOTS)
        campaign.add_backend("two", connect(two), parallel_jobs=SLOTS)
        forecast = campaign.pilot(8)
        assert forecast.basis == "pilot" and forecast.measured == 8 and forecast.remaining == 192
        assert campaign.store.counts(campaign.id)[S.DONE] == 8
        assert len(backend_jobs(one)) + len(backend_jobs(two)) == 8  # nothing beyond the pilot
        c = forecast.credits
        assert c.low <= c.median <= c.high

        started = time.monotonic()
        campaign.start()
        assert campaign.wait(timeout=300)
        took = time.monotonic() - started
        summary = campaign.status()
        assert summary.counts[S.DONE] == 200

        credits_error = summary.credits / c.median - 1
        makespan_error = took / forecast.makespan_s.median - 1
        print(f"credits: forecast {c.median:.2f} ({c.low:.2f}-{c.high:.2f}), spent {summary.credits:.2f} "
              f"({credits_error:+.1%}); makespan: forecast {forecast.makespan_s.median:.1f} s, "
              f"took {took:.1f} s ({makespan_error:+.1%})")
        assert abs(credits_error) <= 0.15
        assert abs(makespan_error) <= 0.20
        # As it ran, the forecast was made again from every done task, tracking the pilot's.
        assert summary.forecast is not None and summary.tracking is not None
        assert summary.tracking["done"] > 8 and abs(summary.tracking["ratio"] - 1) <= 0.15
        # The campaign's gauge kept sizes and measurements between those forecasts: it comes to
        # what one made from scratch does.
        kept = campaign.make_forecast(record=False)
        fresh, measured = of_campaign(campaign.store, campaign.id, slots=[SLOTS, SLOTS], basis="running")
        assert kept is not None and fresh is not None and len(measured) == 200
        assert kept.to_dict() | {"made": ""} == fresh.to_dict() | {"made": ""}


def test_the_forecast_is_kept_in_the_store(tmp_path: Path, udp_dir: Path, backends: Any) -> None:
    one = backends("one", run_slots=8, simulation=AREA_COST)
    target = tmp_path / "c.sqlite"
    with Campaign.create(target, uneven_tiles(12), bap(udp_dir), polling=POLL,
                         defaults={"temporal_extent": TEMPORAL}, output_dir=tmp_path / "out") as campaign:
        campaign.add_backend("one", connect(one), parallel_jobs=4)
        made = campaign.pilot(3)
    with Store.open(target) as store, Campaign.open(store) as again:
        kept = again.forecast()
        assert kept is not None and kept.to_dict() == made.to_dict()
        shown = again.summary()["forecast"]["credits"]["median"]
        assert shown == pytest.approx(made.credits.median, rel=1e-6)
        assert np.isfinite(kept.makespan_s.median) and kept.volume_bytes.median > 0


def test_settings_saved_by_two_processes_keep_each_others_keys(tmp_path: Path, udp_dir: Path) -> None:
    """One process chooses the pilot while another, which read the settings before, raises the
    budget: the store keeps both."""
    target = tmp_path / "c.sqlite"
    defaults = {"temporal_extent": TEMPORAL}
    with Campaign.create(target, uneven_tiles(12), bap(udp_dir), defaults=defaults) as first, \
            Campaign.open(target) as second:
        chosen = {task.id for task in first.pilot_tasks(3)}
        second.set_limits(Limits(max_credits=5.0))
        with Campaign.open(target) as again:
            assert set(again.settings.pilot) == chosen and again.limits.max_credits == 5.0
        assert {task.id for task in second.pilot_tasks(3)} == chosen  # the first one's choice
