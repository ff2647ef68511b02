"""Results of a hand-built store of done tasks: verification and the mosaic, as a library and a CLI."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from openeo_upscale.campaign import Store, TaskState
from openeo_upscale.campaign.mosaic import Problem, ProblemKind, build_mosaic, verify_results
from openeo_upscale.cli import main

S = TaskState
TILE = 8
"""Pixels along a tile's edge."""
RES = 10.0
ORIGIN = (600_000.0, 5_700_000.0)
LABELS = ("openEO_2023-05-01Z", "openEO_2023-06-01Z")
BANDS = ("B04", "B03", "B02")
PATH_TO_DONE = [S.CREATING, S.QUEUED, S.RUNNING, S.FINISHED, S.DOWNLOADING, S.DONE]


def _tile_data(row: int, col: int, label_index: int) -> np.ndarray:
    """Distinct values per tile, band and date, so a misplaced pixel shows."""
    base = 1000 * label_index + 100 * (2 * row + col)
    grid = np.arange(TILE * TILE, dtype="int16").reshape(TILE, TILE)
    return np.stack([grid + base + 10_000 * (b + 1) for b in range(len(BANDS))]).astype("int16")


def _write_tile(folder: Path, row: int, col: int) -> list[Path]:
    folder.mkdir(parents=True)
    transform = Affine(RES, 0, ORIGIN[0] + col * TILE * RES, 0, -RES, ORIGIN[1] - row * TILE * RES)
    paths, assets = [], {}
    for index, label in enumerate(LABELS):
        path = folder / f"{label}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=TILE, height=TILE, count=len(BANDS),
                           dtype="int16", crs=CRS.from_epsg(32631), transform=transform, nodata=-1) as ds:
            ds.write(_tile_data(row, col, index))
            for b, name in enumerate(BANDS, start=1):
                ds.set_band_description(b, name)
        data = path.read_bytes()
        assets[path.name] = {"href": f"http://backend/{path.name}", "type": "image/tiff",
                             "file:size": len(data),
                             "file:checksum": "1220" + hashlib.sha256(data).hexdigest()}
        paths.append(path)
    (folder / "item.json").write_text(json.dumps({"type": "Feature", "assets": assets}))
    return paths


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store with one campaign of 2x2 done tiles whose results are on disk."""
    out = tmp_path / "results"
    target = tmp_path / "store.db"
    cells = [(r, c) for r in range(2) for c in range(2)]
    with Store.open(target) as store:
        campaign_id = store.create_campaign(
            "mosaic", config={"uid": "abcdef123456", "output_dir": str(out)},
            udp={"id": "p", "process_graph": {}}, tasks=[{"tile_id": f"t{r}{c}"} for r, c in cells])
        for task, (r, c) in zip(store.all_tasks(campaign_id), cells, strict=True):
            paths = _write_tile(out / task.tile_id, r, c)
            state = S.PENDING
            for following in PATH_TO_DONE:
                fields = {"result_paths": [str(p) for p in paths]} if following is S.DONE else {}
                assert store.transition(task.id, state, following, actor="test", **fields)
                state = following
    return target


def _campaign_id(store: Store) -> int:
    return int(store.campaign()["id"])


def test_verify_finds_nothing_wrong_then_a_truncated_and_a_deleted_file(store_path: Path) -> None:
    out = store_path.parent / "results"
    with Store.open(store_path) as store:
        assert verify_results(store, _campaign_id(store)) == []
        truncated = out / "t01" / f"{LABELS[0]}.tif"
        truncated.write_bytes(truncated.read_bytes()[:-10])
        deleted = out / "t10" / f"{LABELS[1]}.tif"
        deleted.unlink()
        problems = verify_results(store, _campaign_id(store))
    assert [(p.tile_id, Path(p.path), p.kind) for p in problems] == [
        ("t01", truncated, ProblemKind.CORRUPT),
        ("t10", deleted, ProblemKind.MISSING),
    ]
    assert "expected" in problems[0].detail


def test_verify_reports_a_changed_checksum_and_an_unverifiable_file(store_path: Path) -> None:
    out = store_path.parent / "results"
    flipped = out / "t00" / f"{LABELS[0]}.tif"
    data = bytearray(flipped.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    flipped.write_bytes(bytes(data))
    (out / "t11" / "item.json").unlink()
    with Store.open(store_path) as store:
        problems = verify_results(store, _campaign_id(store))
    kinds = {(p.tile_id, p.kind) for p in problems}
    assert kinds == {("t00", ProblemKind.CORRUPT), ("t11", ProblemKind.UNVERIFIABLE)}
    corrupt = next(p for p in problems if p.kind is ProblemKind.CORRUPT)
    assert isinstance(corrupt, Problem) and "sha256" in corrupt.detail


def test_mosaic_places_the_tiles_side_by_side_without_seams(store_path: Path, tmp_path: Path) -> None:
    with Store.open(store_path) as store:
        written = build_mosaic(store, _campaign_id(store), tmp_path / "m")
    expected_names = sorted(
        [f"{label}_{band}.tif" for label in LABELS for band in BANDS] + [f"{label}.png" for label in LABELS])
    assert sorted(p.name for p in written) == expected_names
    for index, label in enumerate(LABELS):
        for b, band in enumerate(BANDS):
            with rasterio.open(tmp_path / "m" / f"{label}_{band}.tif") as ds:
                assert ds.crs == CRS.from_epsg(32631)
                assert (ds.width, ds.height, ds.count) == (2 * TILE, 2 * TILE, 1)
                assert ds.transform == Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1])
                assert ds.nodata == -1
                assert ds.descriptions == (band,)
                assert ds.profile["tiled"]
                assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
                mosaic = ds.read(1)
            side_by_side = np.block([[_tile_data(r, c, index)[b] for c in range(2)] for r in range(2)])
            np.testing.assert_array_equal(mosaic, side_by_side)


def test_quicklook_is_an_rgba_png_of_the_mosaic_size(store_path: Path, tmp_path: Path) -> None:
    with Store.open(store_path) as store:
        build_mosaic(store, _campaign_id(store), tmp_path / "m")
    for label in LABELS:
        png = (tmp_path / "m" / f"{label}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
        assert (width, height, depth, colour) == (2 * TILE, 2 * TILE, 8, 6)  # 8-bit RGBA
    assert not list((tmp_path / "m").glob("*.aux.xml"))


def test_mosaic_default_folder_and_missing_tiles_left_out(store_path: Path) -> None:
    out = store_path.parent / "results"
    (out / "t11" / f"{LABELS[0]}.tif").unlink()
    with Store.open(store_path) as store:
        written = build_mosaic(store, _campaign_id(store))
    assert {p.parent for p in written} == {out / "mosaic"}
    with rasterio.open(out / "mosaic" / f"{LABELS[0]}_B04.tif") as ds:
        band = ds.read(1)
    assert (band[TILE:, TILE:] == -1).all() and (band[:TILE, :TILE] != -1).all()


def test_cli_verify_and_mosaic(store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", "verify", str(store_path)]) == 0
    assert "8 file(s)" in capsys.readouterr().out
    assert main(["results", "mosaic", str(store_path), "--name", "mosaic", "-o", str(tmp_path / "m")]) == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "m" / f"{LABELS[0]}_B02.tif") in printed and f"{LABELS[1]}.png" in printed
    (store_path.parent / "results" / "t00" / f"{LABELS[0]}.tif").unlink()
    assert main(["results", "verify", str(store_path)]) == 1
    printed = capsys.readouterr().out
    assert "missing" in printed and "t00" in printed
    assert main(["results", "verify", str(tmp_path / "absent.db")]) == 2


def test_tiles_across_utm_zones_go_to_the_zone_with_most_tiles(store_path: Path, tmp_path: Path) -> None:
    out = store_path.parent / "results"
    moved = out / "t11" / f"{LABELS[0]}.tif"
    with rasterio.open(moved) as ds:
        profile, data = ds.profile, ds.read()
    # The same tile, but in the neighbouring zone (EPSG:32632): it is warped back onto 32631's grid.
    from rasterio.warp import transform as warp_points

    xs, ys = warp_points("EPSG:32631", "EPSG:32632", [profile["transform"].c], [profile["transform"].f])
    profile.update(crs=CRS.from_epsg(32632), transform=Affine(RES, 0, xs[0], 0, -RES, ys[0]))
    with rasterio.open(moved, "w", **profile) as ds:
        ds.write(data)
    with Store.open(store_path) as store:
        build_mosaic(store, _campaign_id(store), tmp_path / "m")
    with rasterio.open(tmp_path / "m" / f"{LABELS[0]}_B04.tif") as ds:
        assert ds.crs == CRS.from_epsg(32631)
        assert ds.res == (RES, RES)
        assert (ds.transform.c, ds.transform.f) == ORIGIN  # still on the native tiles' pixel grid
        band = ds.read(1)
    # The native tiles keep their exact pixels where the warped one does not overlap them.
    np.testing.assert_array_equal(band[:TILE, :TILE], _tile_data(0, 0, 0)[0])
    np.testing.assert_array_equal(band[:TILE, TILE:2 * TILE], _tile_data(0, 1, 0)[0])
    np.testing.assert_array_equal(band[TILE:2 * TILE, :TILE], _tile_data(1, 0, 0)[0])
    warped = band[TILE:, TILE:]
    assert (warped != -1).sum() >= TILE * TILE // 2
    assert set(np.unique(warped[warped != -1])) <= set(np.unique(_tile_data(1, 1, 0)[0]))
