"""Jobs that run out of memory, healed with ``on_memory_error = "split"``: the tile becomes four
quadrant tasks (derived ids, extents cut on its pixel grid, the spatial parameter rebuilt), added in
the same store transaction that ends the parent in ``split``, once however many runners try; the
children run their normal life, may split again down to ``split_min_size_m``, and the results
(mosaic, STAC collection, maps, dashboard data) take them in. End to end on the local backend: a
simulated campaign with a tenth of its tiles over the memory limit, and a real-mode campaign whose
mosaic is compared pixel by pixel with the one of the same area run without a memory limit."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import rowcol
from rich.console import Console

from openeo_upscale.backend import LocalBackend, Simulation
from openeo_upscale.backend.config import Mode
from openeo_upscale.campaign import Campaign, Polling, RetryPolicy, Store, TaskState, Udp
from openeo_upscale.campaign.catalog import UPSCALE_PREFIX, load_collection
from openeo_upscale.campaign.creator import task_rows, tile_records
from openeo_upscale.campaign.models import Task
from openeo_upscale.campaign.mosaic import build_mosaic
from openeo_upscale.campaign.scheduler import token_of
from openeo_upscale.campaign.split import Splitter, parent_of
from openeo_upscale.campaign.states import TASK_SETTLED, TASK_TERMINAL
from openeo_upscale.errors import CampaignError, StoreError
from openeo_upscale.grid import tiles
from openeo_upscale.grid.aoi import transform
from openeo_upscale.monitor import data, geography, maps, terminal
from openeo_upscale.monitor.colors import STATE_COLORS
from tests.campaign.team import (
    DEFAULTS,
    POLL,
    audit,
    backend_jobs,
    check_jobs_match_attempts,
    connect,
    max_ndvi,
)

S = TaskState

# A 5 km tile over two months needs about 500 + 40 * 25.5 + 100 * 2 = 1720 MB and fits in the 2048 MB
# a job gets; a 10 km one needs about 4740 MB and does not, but each of its 5 km quadrants does.
SPLITTABLE = Simulation(time_scale=0.002, queue_seconds=1.0, memory_default_mb=2048, memory_base_mb=500,
                        memory_per_km2_mb=40, memory_per_month_mb=100)
# At 60 MB per km² a 5 km quadrant (about 2230 MB) is still too heavy: only 2.5 km ones fit.
HEAVY = Simulation(time_scale=0.002, queue_seconds=1.0, memory_default_mb=2048, memory_base_mb=500,
                   memory_per_km2_mb=60, memory_per_month_mb=100)
SPLIT = RetryPolicy(on_memory_error="split", backoff_base=0.1, backoff_max=0.5)
REAL_POLL = Polling(min_interval=0.2, max_interval=1.0)
"""Real jobs take seconds: polling faster only takes CPU from them."""


def mixed_tiles(small: int, large: int) -> gpd.GeoDataFrame:
    """``small`` 5 km tiles around Antwerp and ``large`` 10 km ones east of them (not overlapping)."""
    five = tiles(shapely.box(3.9, 50.9, 4.9, 51.6), 5000).head(small)
    ten = tiles(shapely.box(5.3, 50.9, 5.9, 51.2), 10000).head(large)
    assert len(five) == small and len(ten) == large
    return gpd.GeoDataFrame(pd.concat([five, ten], ignore_index=True), crs=five.crs)


def run_campaign(store: Store, backend: LocalBackend, tiles_: Any, udp: Udp, out: Path, *,
                 retry: RetryPolicy = SPLIT, name: str = "campaign", polling: Polling = POLL,
                 defaults: dict[str, Any] = DEFAULTS) -> tuple[Campaign, dict[str, Any]]:
    campaign = Campaign.create(store, tiles_, udp, name=name, defaults=defaults, output_dir=out,
                               polling=polling, retry=retry)
    campaign.add_backend("local", connect(backend), parallel_jobs=4)
    return campaign, campaign.run()


def by_tile(store: Store, campaign: Campaign) -> dict[str, Task]:
    return {task.tile_id: task for task in store.all_tasks(campaign.id)}


def one_task(store: Store, record: dict[str, Any], udp: Udp, **extra: Any) -> Task:
    """A campaign of one task, as the creator builds it from a tile record."""
    campaign_id = store.create_campaign(f"c{len(store.campaigns())}", config={"uid": "u"},
                                        tasks=task_rows(udp, tile_records([{**record, **extra}]),
                                                        defaults=DEFAULTS))
    return next(store.all_tasks(campaign_id))


def grid_record(size: int = 5000) -> dict[str, Any]:
    found = tiles(shapely.box(4.3, 51.1, 4.35, 51.15), size)
    return dict(found.iloc[0].drop(["area_km2", "aoi_fraction"]))


def spatial_udp() -> Udp:
    """A UDP taking a UTM box, a GeoJSON geometry, a resolution and bands."""
    box = {"type": "object", "subtype": "bounding-box", "properties": {"west": {}, "south": {}, "east": {},
                                                                       "north": {}, "crs": {}}}
    return Udp.from_dict({"id": "spatial", "process_graph": {}, "parameters": [
        {"name": "bbox", "schema": box},
        {"name": "geometry", "schema": {"type": "object", "subtype": "geojson"}},
        {"name": "resolution", "schema": {"type": "number"}, "default": 20},
        {"name": "bands", "schema": {"type": "array"}, "default": ["B04", "B08"]},
        {"name": "temporal_extent", "schema": {"type": "array"}},
    ]})


# -- the quadrants --------------------------------------------------------------------------------------


def test_quadrants_cut_the_tile_on_its_grid_and_rebuild_only_the_spatial_parameters(tmp_path: Path) -> None:
    udp = spatial_udp()
    with Store.open(tmp_path / "s.sqlite") as store:
        parent = one_task(store, grid_record(), udp, backend="local",
                          job_options={"executor-memory": "3g"})
    children = Splitter(udp, DEFAULTS).children(parent)
    assert [c["tile_id"] for c in children] == [f"{parent.tile_id}.q{i}" for i in range(4)]
    assert all(parent_of(c["tile_id"]) == parent.tile_id for c in children)
    west, south, east, north = parent.west, parent.south, parent.east, parent.north
    assert west is not None and south is not None and east is not None and north is not None
    mid_x, mid_y = west + 2500, south + 2500
    assert [(c["west"], c["south"], c["east"], c["north"]) for c in children] == [
        (west, south, mid_x, mid_y), (mid_x, south, east, mid_y),  # south-west, south-east
        (west, mid_y, mid_x, north), (mid_x, mid_y, east, north)]  # north-west, north-east
    outline = shapely.from_wkt(parent.geometry)
    pieces = [shapely.from_wkt(c["geometry"]) for c in children]
    assert shapely.union_all(pieces).symmetric_difference(outline).area < 1e-5 * outline.area
    for child, piece in zip(children, pieces, strict=True):
        parameters = child["parameters"]
        assert parameters["bbox"] == {"west": child["west"], "south": child["south"], "east": child["east"],
                                      "north": child["north"], "crs": parent.epsg}
        assert shapely.geometry.shape(parameters["geometry"]).equals_exact(piece, 1e-9)
        # Everything else as the parent had it: its other arguments, pinned backend and job options.
        assert {k: v for k, v in parameters.items() if k not in ("bbox", "geometry")} == \
            {k: v for k, v in parent.parameters.items() if k not in ("bbox", "geometry")}
        assert child["pinned_backend"] == "local" and child["job_options"] == {"executor-memory": "3g"}
        assert child["epsg"] == parent.epsg


def test_the_cut_stays_on_the_pixel_grid_of_an_uneven_tile(tmp_path: Path) -> None:
    record = grid_record()
    record["east"] += 130  # 5130 m wide: the midpoint (2565 m in) is between two 20 m pixels
    record["north"] += 70
    with Store.open(tmp_path / "s.sqlite") as store:
        at_20 = one_task(store, record, spatial_udp())
        at_10 = one_task(store, {**record, "tile_id": "other"}, max_ndvi_doc())
    cut_20 = Splitter(spatial_udp(), DEFAULTS).children(at_20)[3]
    assert (cut_20["west"] % 20, cut_20["south"] % 20) == (0, 0)  # the task's own resolution
    cut_10 = Splitter(max_ndvi_doc(), DEFAULTS).children(at_10)[3]
    assert (cut_10["west"] % 10, cut_10["south"] % 10) == (0, 0)  # none given: 10 m
    assert cut_10["west"] - record["west"] == pytest.approx(2560, abs=10)


def max_ndvi_doc() -> Udp:
    box = {"type": "object", "subtype": "bounding-box", "properties": {"west": {}, "crs": {}}}
    return Udp.from_dict({"id": "m", "process_graph": {}, "parameters": [
        {"name": "bbox", "schema": box}, {"name": "temporal_extent", "schema": {"type": "array"}}]})


def test_a_tile_that_cannot_be_split_says_why(tmp_path: Path) -> None:
    udp = spatial_udp()
    with Store.open(tmp_path / "s.sqlite") as store:
        tile = one_task(store, grid_record(), udp)
        bare = one_task(store, {"tile_id": "bare", "geometry": shapely.box(4.3, 51.1, 4.31, 51.11)}, udp)
        flat = one_task(store, {**grid_record(), "tile_id": "flat"},
                        Udp.from_dict({"id": "f", "process_graph": {}, "parameters": [
                            {"name": "temporal_extent", "schema": {"type": "array"}}]}))
    with pytest.raises(CampaignError, match=r"smaller than split_min_size_m 3,000 m"):
        Splitter(udp, DEFAULTS, min_size_m=3000).children(tile)
    with pytest.raises(CampaignError, match="no native UTM extent"):
        Splitter(udp, DEFAULTS).children(bare)
    with pytest.raises(CampaignError, match="no spatial parameter"):
        Splitter(udp, DEFAULTS).children(flat)
    assert parent_of("a.q3") == "a" and parent_of("a.q0.q2") == "a.q0"
    assert parent_of("a.q4") is None and parent_of("q1") is None and parent_of("a_q1") is None


def test_a_quadrant_outside_a_clipped_tile_is_left_out(tmp_path: Path) -> None:
    record = grid_record()
    west, south, north = record["west"], record["south"], record["north"]
    # The tile as the grid clips it to an area of interest covering its western 2 km only.
    record["geometry"] = transform(shapely.segmentize(shapely.box(west, south, west + 2000, north), 250),
                                   record["epsg"], 4326)
    with Store.open(tmp_path / "s.sqlite") as store:
        clipped = one_task(store, record, spatial_udp())
    children = Splitter(spatial_udp(), DEFAULTS).children(clipped)
    assert [c["tile_id"][-2:] for c in children] == ["q0", "q2"]  # the western quadrants only
    for child in children:
        assert shapely.from_wkt(child["geometry"]).within(record["geometry"].buffer(1e-9))


# -- the store: one transaction, once ---------------------------------------------------------------


def running_task(store: Store) -> Task:
    """A campaign of one 5 km tile whose job is running on backend ``b`` (its ledger row open)."""
    campaign_id = store.create_campaign("c", config={"uid": "u"},
                                        tasks=task_rows(max_ndvi_doc(), tile_records([grid_record()]),
                                                        defaults=DEFAULTS))
    task = next(store.all_tasks(campaign_id))
    store.transition(task.id, S.PENDING, S.CREATING, actor="t", attempts=1, client_token="ou-abcdef-1-1",
                     backend="b")
    store.transition(task.id, S.CREATING, S.QUEUED, actor="t", job_id="j-1", job_status="queued")
    store.transition(task.id, S.QUEUED, S.RUNNING, actor="t", job_status="running")
    return store.task(task.id)


def test_the_split_and_its_children_are_one_transaction_and_happen_once(store: Store) -> None:
    parent = running_task(store)
    children = Splitter(max_ndvi_doc(), DEFAULTS).children(parent)
    ids = store.split_task(parent.id, S.RUNNING, children, actor="scheduler@1", reason="out of memory; split",
                           origin="split from tile x", job_status="error", error="OOM", costs=1.5)
    assert ids is not None and len(ids) == 4
    # The same split again (a second runner that saw the same failed job): nothing is added.
    assert store.split_task(parent.id, S.RUNNING, children, actor="scheduler@2", reason="again",
                            origin="again") is None
    tasks = list(store.all_tasks(parent.campaign_id))
    assert Counter(t.state for t in tasks) == {S.SPLIT: 1, S.PENDING: 4}
    assert sorted(t.id for t in tasks if t.state is S.PENDING) == sorted(ids)
    stored = store.task(parent.id)
    assert stored.error == "OOM" and stored.costs == 1.5 and stored.job_status == "error"
    assert [(e.from_state, e.to_state, e.reason) for e in store.events_of(parent.id)][-1] == \
        (S.RUNNING, S.SPLIT, "out of memory; split")
    for child_id in ids:
        assert [(e.from_state, e.to_state, e.reason) for e in store.events_of(child_id)] == \
            [(S.PENDING, S.PENDING, "split from tile x")]
    (row,) = store.jobs_of(parent.id)
    assert row.finished is not None and row.costs == 1.5  # its slot is free, its credits counted


def test_two_runners_splitting_the_same_task_add_its_children_once(store: Store, store_target: str) -> None:
    parent = running_task(store)
    children = Splitter(max_ndvi_doc(), DEFAULTS).children(parent)
    barrier = threading.Barrier(2)
    results: list[list[int] | None] = []

    def split(actor: str) -> None:
        with Store.open(store_target) as own:
            barrier.wait()
            results.append(own.split_task(parent.id, S.RUNNING, children, actor=actor, reason="r",
                                          origin="o"))

    threads = [threading.Thread(target=split, args=(f"scheduler@{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(len(r) if r else 0 for r in results) == [0, 4]
    assert Counter(t.state for t in store.all_tasks(parent.campaign_id)) == {S.SPLIT: 1, S.PENDING: 4}


def test_a_child_tile_id_already_taken_refuses_the_split_and_writes_nothing(store: Store) -> None:
    parent = running_task(store)
    children = Splitter(max_ndvi_doc(), DEFAULTS).children(parent)
    store.add_tasks(parent.campaign_id, [{"tile_id": children[2]["tile_id"]}])
    with pytest.raises(StoreError, match=r"already has tile id"):
        store.split_task(parent.id, S.RUNNING, children, actor="s", reason="r", origin="o")
    assert store.task(parent.id).state is S.RUNNING
    assert len(list(store.all_tasks(parent.campaign_id))) == 2


def test_split_is_terminal_finished_work_and_not_retryable() -> None:
    assert S.SPLIT in TASK_TERMINAL and S.SPLIT in TASK_SETTLED and S.FAILED not in TASK_SETTLED
    assert S.SPLIT in STATE_COLORS


# -- end to end, simulated ----------------------------------------------------------------------------


def test_a_tenth_of_the_tiles_over_the_memory_limit_are_split_and_every_child_is_done(
    backends: Any, udp_dir: Path, tmp_path: Path
) -> None:
    local = backends("local", simulation=SPLITTABLE)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign, summary = run_campaign(store, local, mixed_tiles(18, 2), max_ndvi(udp_dir),
                                         tmp_path / "out")
        counts = summary["counts"]
        assert (counts["split"], counts["done"], counts["failed"], summary["tasks"]) == (2, 26, 0, 28), \
            summary
        found = by_tile(store, campaign)
        parents = [task for task in found.values() if task.state is S.SPLIT]
        assert sorted(p.tile_id.rsplit("_", 1)[1] for p in parents) == ["10000", "10000"]
        for parent in parents:
            names = [f"{parent.tile_id}.q{i}" for i in range(4)]
            assert parent.attempts == 1 and parent.error and "exceeded its memory limit" in parent.error
            assert f"split into {', '.join(names)}" in (store.events_of(parent.id)[-1].reason or "")
            for name in names:
                child = found[name]
                assert child.state is S.DONE and child.attempts == 1, child
                assert child.parameters["bbox"]["east"] - child.parameters["bbox"]["west"] == 5000
                assert f"split from tile {parent.tile_id}" in (store.events_of(child.id)[0].reason or "")
        assert store.credits(campaign.id) > sum(t.costs or 0 for t in found.values() if t.state is S.DONE)
        # The backend's own job list: one job per task attempt, no orphan, one finished job per child.
        check_jobs_match_attempts(store, campaign, local)
        checked = audit(store, campaign.id, {"local": local})
        assert not checked.problems and checked.jobs == 28
        jobs = backend_jobs(local)
        task_of = {f"ou-{campaign.uid}-{task.id}-1": task for task in found.values()}
        statuses = Counter((task_of[token_of(job) or ""].state, job["status"]) for job in jobs)
        assert statuses == {(S.SPLIT, "error"): 2, (S.DONE, "finished"): 26}


def test_a_quadrant_still_too_heavy_splits_again(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    local = backends("local", simulation=HEAVY)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign, summary = run_campaign(store, local, mixed_tiles(0, 1), max_ndvi(udp_dir), tmp_path / "out")
        assert (summary["counts"]["split"], summary["counts"]["done"], summary["tasks"]) == (5, 16, 21)
        found = by_tile(store, campaign)
        (top,) = [t for t in found.values() if parent_of(t.tile_id) is None]
        assert {t.tile_id for t in found.values() if t.state is S.DONE} == {
            f"{top.tile_id}.q{i}.q{j}" for i in range(4) for j in range(4)}
        check_jobs_match_attempts(store, campaign, local)
        assert len(backend_jobs(local)) == 21


def test_below_the_minimum_size_a_tile_fails_as_today(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    local = backends("local", simulation=HEAVY)
    policy = RetryPolicy(on_memory_error="split", split_min_size_m=3000, max_attempts=2, backoff_base=0.1,
                         backoff_max=0.5)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign, summary = run_campaign(store, local, mixed_tiles(0, 1), max_ndvi(udp_dir), tmp_path / "out",
                                         retry=policy)
        assert (summary["counts"]["split"], summary["counts"]["failed"], summary["tasks"]) == (1, 4, 5)
        for child in store.tasks_in(campaign.id, S.FAILED):
            assert child.attempts == 2 and child.error and "exceeded its memory limit" in child.error
            reasons = [e.reason or "" for e in store.events_of(child.id)]
            assert any("not split" in r and "split_min_size_m 3,000 m" in r for r in reasons), reasons
        check_jobs_match_attempts(store, campaign, local)


# -- results: mosaic, STAC collection, maps, dashboard data ----------------------------------------------


def test_the_results_take_the_children_in_and_show_the_parent_as_split(
    backends: Any, udp_dir: Path, tmp_path: Path
) -> None:
    local = backends("local", simulation=SPLITTABLE)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign, summary = run_campaign(store, local, mixed_tiles(1, 1), max_ndvi(udp_dir), tmp_path / "out")
        assert (summary["counts"]["split"], summary["counts"]["done"]) == (1, 5)
        found = by_tile(store, campaign)
        (parent,) = [t for t in found.values() if t.state is S.SPLIT]
        children = [t for t in found.values() if parent_of(t.tile_id) == parent.tile_id]
        check_collection(Path(summary["collection"]), found, parent, children)
        check_mosaic(store, campaign, tmp_path / "mosaic", [*children, parent])
        check_map(store, campaign, parent)
        check_dashboard_data(store, campaign, parent)
        # Finished work: nothing left for the progress panel, nothing to retry.
        assert terminal.remaining(campaign.summary()) == 0
        assert campaign.retry() == 0
        with pytest.raises(CampaignError, match="only failed, canceled or skipped"):
            campaign.retry([S.SPLIT])


def check_collection(path: Path, found: dict[str, Task], parent: Task, children: Sequence[Task]) -> None:
    """One item per done task, each quadrant naming the tile it replaces; none for the split tile."""
    collection = load_collection(path)
    items = {item.id: item for item in collection.get_items()}
    assert set(items) == {t.tile_id for t in found.values() if t.state is S.DONE}
    assert parent.tile_id not in items
    for child in children:
        assert items[child.tile_id].properties[f"{UPSCALE_PREFIX}split_from"] == parent.tile_id
    assert all(f"{UPSCALE_PREFIX}split_from" not in item.properties
               for name, item in items.items() if parent_of(name) is None)


def check_mosaic(store: Store, campaign: Campaign, out: Path, where: Sequence[Task]) -> None:
    """The mosaic has data at the centre of every quadrant and of the split tile."""
    bands = [path for path in build_mosaic(store, campaign.id, out) if path.suffix == ".tif"]
    assert len(bands) == 1  # one date label, one band (NDVI)
    with rasterio.open(bands[0]) as ds:
        values = ds.read(1, masked=True)
        for task in where:
            assert task.west is not None and task.east is not None
            assert task.south is not None and task.north is not None
            x, y = (task.west + task.east) / 2, (task.south + task.north) / 2
            row, col = rowcol(ds.transform, x, y)
            assert not np.ma.is_masked(values[row, col]), task.tile_id


def check_map(store: Store, campaign: Campaign, parent: Task) -> None:
    """The split tile is a trace of its own, drawn beneath the quadrants, hovering as split."""
    figure = maps.plot_map(store, campaign.id)
    traces = {trace.name: trace for trace in figure.data if not geography.is_geography(trace)}
    assert set(traces) == {"done", "split"}
    split = traces["split"]
    assert split.zorder < (traces["done"].zorder or 0) and split.fillcolor == STATE_COLORS[S.SPLIT]
    assert split.meta["tiles"] == 1 and traces["done"].meta["tiles"] == 5
    assert any(text and f"<b>{parent.tile_id}</b>" in text and "state: split" in text for text in split.text)


def check_dashboard_data(store: Store, campaign: Campaign, parent: Task) -> None:
    """Not a failure, not left to do; drawn first (under its quadrants); every tile has an outline."""
    overview = data.overview(store, campaign.id)
    assert overview["counts"]["split"] == 1 and overview["counts"]["failed"] == 0
    assert overview["failures"] == [] and overview["eta"]["remaining"] == 0
    assert overview["backends"]["local"]["failed"] == 0
    states = data.states(store, campaign.id)
    assert states["states"][0] == "split"
    shown = dict(zip(states["id"], (states["states"][i] for i in states["state"]), strict=True))
    assert shown[parent.id] == "split" and Counter(shown.values()) == {"done": 5, "split": 1}
    assert len(data.tiles_geojson(store, campaign.id)["features"]) == 6


# -- end to end, real mode: the mosaic against an unsplit run --------------------------------------------

REAL_MODEL = Simulation(memory_default_mb=1000, memory_base_mb=500, memory_per_km2_mb=200,
                        memory_per_month_mb=0)
"""A 1 km tile needs about 700 MB and fits in the 1000 MB a job gets; a 2 km one (1300 MB) does not."""
REAL_PERIOD = {"temporal_extent": ["2023-06-01", "2023-06-20"]}
ORIGIN = (590_000.0, 5_660_000.0)


def real_tiles() -> list[dict[str, Any]]:
    """One 2 km tile and two 1 km tiles beside it, in EPSG:32631 near Antwerp: few, as each real job
    costs about two CPU seconds, most of it its worker process starting."""
    x, y = ORIGIN
    boxes = [(x, y, x + 2000, y + 2000), (x + 2000, y, x + 3000, y + 1000),
             (x + 2000, y + 1000, x + 3000, y + 2000)]
    return [{"tile_id": f"32631_{w:.0f}_{s:.0f}_{e - w:.0f}", "epsg": 32631, "west": w, "south": s, "east": e,
             "north": n, "geometry": transform(shapely.segmentize(shapely.box(w, s, e, n), 250), 32631, 4326)}
            for w, s, e, n in boxes]


def test_real_mode_split_mosaic_equals_the_unsplit_one_pixel_for_pixel(
    backends: Any, udp_dir: Path, tmp_path: Path
) -> None:
    limited = backends("limited", mode=Mode.REAL, simulation=REAL_MODEL)
    unlimited = backends("unlimited", mode=Mode.REAL)
    udp = max_ndvi(udp_dir)
    with Store.open(tmp_path / "split.sqlite") as split_store, \
            Store.open(tmp_path / "plain.sqlite") as plain_store:
        runs = []
        for store, backend, name in ((split_store, limited, "split"), (plain_store, unlimited, "plain")):
            campaign = Campaign.create(store, real_tiles(), udp, name=name, defaults=REAL_PERIOD,
                                       output_dir=tmp_path / name, polling=REAL_POLL, retry=SPLIT)
            campaign.add_backend("local", connect(backend), parallel_jobs=4)
            campaign.start()  # both at once: most of a real job is its worker starting up
            runs.append(campaign)
        split_run, plain_run = runs
        for campaign in runs:
            assert campaign.wait(timeout=120)
        split_counts = split_run.summary()["counts"]
        assert (split_counts["split"], split_counts["done"], split_counts["failed"]) == (1, 6, 0), \
            split_counts
        assert plain_run.summary()["counts"]["done"] == 3
        (parent,) = split_store.tasks_in(split_run.id, S.SPLIT)
        assert parent.tile_id.endswith("_2000") and "exceeded its memory limit" in (parent.error or "")
        check_jobs_match_attempts(split_store, split_run, limited)
        split_bands = build_mosaic(split_store, split_run.id, tmp_path / "split-mosaic")
        plain_bands = build_mosaic(plain_store, plain_run.id, tmp_path / "plain-mosaic")
    assert [p.name for p in split_bands] == [p.name for p in plain_bands]
    for split_path, plain_path in zip(split_bands, plain_bands, strict=True):
        if split_path.suffix != ".tif":
            continue
        with rasterio.open(split_path) as got, rasterio.open(plain_path) as expected:
            assert (got.crs, got.transform, got.shape) == (expected.crs, expected.transform, expected.shape)
            have, want = got.read(1, masked=True), expected.read(1, masked=True)
            big = rowcol(got.transform, ORIGIN[0] + 1000, ORIGIN[1] + 1000)
        np.testing.assert_array_equal(np.ma.getmaskarray(have), np.ma.getmaskarray(want))  # no hole
        np.testing.assert_array_equal(have.filled(np.nan), want.filled(np.nan))  # the same pixels
        two_km = want[big[0] - 100:big[0] + 100, big[1] - 100:big[1] + 100]  # the split tile's pixels
        assert two_km.shape == (200, 200) and np.isfinite(two_km.filled(np.nan)).mean() > 0.5


# -- the pilot, the panel and the command line with split tiles ---------------------------------------

def test_a_pilot_tile_that_splits_has_its_quadrants_run_in_the_pilot(
    backends: Any, udp_dir: Path, tmp_path: Path
) -> None:
    local = backends("local", simulation=SPLITTABLE)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, mixed_tiles(3, 1), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL, retry=SPLIT)
        campaign.add_backend("local", connect(local), parallel_jobs=4)
        forecast = campaign.pilot(4)
        counts = store.counts(campaign.id)
        assert (counts[S.SPLIT], counts[S.DONE], counts[S.PENDING]) == (1, 7, 0), counts
        assert forecast.measured == 7 and forecast.remaining == 0
        # The live panel shows the split tile among the states.
        console = Console(record=True, width=200)
        console.print(terminal.render(campaign.summary(), terminal.Progress()))
        assert "split" in console.export_text()


def test_run_ends_with_exit_code_0_when_the_split_tiles_quadrants_are_done(
    tmp_path: Path, backends: Any, udp_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from openeo_upscale.cli import main
    from tests.helpers import PASSWORD_ENV, USER_ENV, campaign_toml

    monkeypatch.setenv(USER_ENV, "demo")
    monkeypatch.setenv(PASSWORD_ENV, "demo")
    local = backends("local", simulation=SPLITTABLE)
    toml = campaign_toml(tmp_path, local.url, udp_dir, name="split", bbox=[5.3, 50.9, 5.45, 51.0], size=10000,
                         retry='on_memory_error = "split"\nbackoff_base = 0.1\nbackoff_max = 0.5')
    assert main(["run", str(toml), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "not done" not in err, err
    with Store.open(tmp_path / "campaign.sqlite") as store:
        (campaign,) = store.campaigns()
        counts = store.counts(int(campaign["id"]))
    assert counts[S.SPLIT] >= 1 and counts[S.DONE] == 4 * counts[S.SPLIT] and counts[S.FAILED] == 0, counts
