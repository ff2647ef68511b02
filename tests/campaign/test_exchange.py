"""Job tables in the openeo client's layout: export, import, round trips, the client's own files, chunking."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely
from openeo.extra.job_management import CsvJobDatabase, MultiBackendJobManager, ParquetJobDatabase

from openeo_upscale.campaign import Store, TaskState, exchange
from openeo_upscale.campaign.exchange import (
    BOOKKEEPING_COLUMNS,
    CLIENT_STATUS,
    ClientStatus,
    export_tasks,
    import_tasks,
)
from openeo_upscale.errors import UpscaleError

_S = TaskState


def _rows(count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        west, south = 590_000 + 5000 * i, 5_660_000
        lon = 4.3 + 0.0712345678 * i
        rows.append({
            "tile_id": f"32631_{west}_{south}_5000", "epsg": 32631,
            "west": float(west), "south": float(south),
            "east": float(west + 5000), "north": float(south + 5000),
            "geometry": shapely.box(lon, 51.1, lon + 0.0712345678, 51.15).wkt,
            "parameters": {"temporal_extent": ["2024-05-01", "2024-07-01"], "max_cloud": 20 + i,
                           "scale": 0.5 * i, "label": f"t{i}", "flag": i % 2 == 0,
                           "options": {"a": [1, 2], "b": None}},
            "pinned_backend": "cdse" if i == 1 else None,
        })
    if count > 2:
        rows[2]["parameters"].pop("label")  # an absent parameter stays absent
    return rows


def _campaign(store: Store, count: int = 4) -> int:
    campaign = store.create_campaign("antwerp")
    store.add_tasks(campaign, _rows(count))
    return campaign


def _equal(imported: list[dict[str, Any]], original: list[dict[str, Any]]) -> None:
    assert len(imported) == len(original)
    for got, want in zip(imported, original, strict=True):
        assert shapely.equals_exact(shapely.from_wkt(got.pop("geometry")),
                                    shapely.from_wkt(want["geometry"]), tolerance=0)
        assert got == {key: value for key, value in want.items() if key != "geometry"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_then_import_gives_the_same_rows(store: Store, tmp_path: Path, suffix: str) -> None:
    campaign = _campaign(store)
    path = tmp_path / f"jobs{suffix}"
    assert export_tasks(store, campaign, path) == 4
    _equal(import_tasks(path), _rows(4))
    # ... and the rows go straight back into a store.
    again = store.create_campaign("copy")
    assert store.add_tasks(again, import_tasks(path)) == 4
    assert [t.parameters for t in store.tasks_in(again, _S.PENDING)] == [r["parameters"] for r in _rows(4)]


def test_exported_columns_follow_the_client_layout(store: Store, tmp_path: Path) -> None:
    campaign = _campaign(store)
    first = store.tasks_in(campaign, _S.PENDING)[0]
    for from_state, to_state in [(_S.PENDING, _S.CREATING), (_S.CREATING, _S.QUEUED), (_S.QUEUED, _S.RUNNING),
                                 (_S.RUNNING, _S.FINISHED)]:
        assert store.transition(first.id, from_state, to_state, actor="t", job_id="j-1", backend="cdse",
                                started=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert store.transition(first.id, _S.FINISHED, _S.CANCELED, actor="t", costs=3.5,
                            usage={"cpu": {"value": 12.5, "unit": "cpu-seconds"},
                                   "memory": {"value": 100, "unit": "mb-seconds"}})
    path = tmp_path / "jobs.csv"
    export_tasks(store, campaign, path)
    with path.open() as file:
        rows = list(csv.DictReader(file))
    header = list(rows[0])
    assert header[:9] == ["id", "backend_name", "status", "start_time", "running_start_time", "cpu", "memory",
                          "duration", "costs"]
    assert header[-1] == "geometry"
    assert rows[0]["id"] == "j-1" and rows[0]["status"] == "canceled" and rows[0]["costs"] == "3.5"
    assert rows[0]["start_time"] == "2024-01-02T03:04:05Z"
    assert rows[0]["running_start_time"].endswith("Z")
    assert rows[0]["cpu"] == "12.5 cpu-seconds" and rows[0]["duration"] == ""
    assert rows[0]["upscale_state"] == "canceled"
    assert {row["status"] for row in rows[1:]} == {"not_started"}
    assert shapely.from_wkt(rows[0]["geometry"]).equals(shapely.from_wkt(_rows(1)[0]["geometry"]))

    # The client reads it as its own job database, geometry included.
    df = CsvJobDatabase(path).read()
    assert isinstance(df, geopandas.GeoDataFrame)
    assert df["status"].tolist() == ["canceled", "not_started", "not_started", "not_started"]


def test_parquet_export_is_geoparquet_the_client_reads(store: Store, tmp_path: Path) -> None:
    campaign = _campaign(store)
    path = tmp_path / "jobs.parquet"
    export_tasks(store, campaign, path)
    frame = geopandas.read_parquet(path)
    assert frame.crs.to_epsg() == 4326
    assert frame.geometry.iloc[0].equals(shapely.from_wkt(_rows(1)[0]["geometry"]))
    assert frame["max_cloud"].tolist() == [20, 21, 22, 23]
    df = ParquetJobDatabase(path).read()
    assert isinstance(df, geopandas.GeoDataFrame) and len(df) == 4


def test_every_state_has_a_client_status() -> None:
    assert set(CLIENT_STATUS) == set(TaskState)
    assert set(CLIENT_STATUS.values()) <= set(ClientStatus)
    assert {status.value for status in ClientStatus} == {"not_started", "created", "queued", "running",
                                                         "finished", "error", "canceled", "skipped"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_written_by_the_client_imports(tmp_path: Path, suffix: str) -> None:
    frame = geopandas.GeoDataFrame({
        "temporal_extent": [["2024-05-01", "2024-07-01"], ["2024-08-01", "2024-09-01"]],
        "bands": [["B04", "B08"], ["B02"]],
        "max_cloud": [20, 30],
        "geometry": [shapely.box(4.3, 51.1, 4.4, 51.2), shapely.box(4.4, 51.1, 4.5, 51.2)],
    }, crs="EPSG:4326")
    path = tmp_path / f"client{suffix}"
    db = CsvJobDatabase(path) if suffix == ".csv" else ParquetJobDatabase(path)
    db.initialize_from_df(frame)
    # The client marks a row as started like this (its own columns only).
    db.persist(MultiBackendJobManager._normalize_df(frame).iloc[[1]].assign(
        id="j-9", backend_name="cdse", status="finished", costs=2.0, cpu="3 cpu-seconds"))
    rows = import_tasks(path)
    assert [row["tile_id"] for row in rows] == ["0", "1"]
    assert rows[0]["parameters"] == {"temporal_extent": ["2024-05-01", "2024-07-01"], "bands": ["B04", "B08"],
                                     "max_cloud": 20}
    assert rows[1]["parameters"]["bands"] == ["B02"]
    assert rows[0]["pinned_backend"] is None and rows[1]["pinned_backend"] is None
    assert shapely.from_wkt(rows[1]["geometry"]).equals(shapely.box(4.4, 51.1, 4.5, 51.2))
    assert rows[0]["epsg"] is None and rows[0]["west"] is None
    pinned = import_tasks(path, pin_from="backend_name")
    assert pinned[1]["pinned_backend"] == "cdse" and pinned[0]["pinned_backend"] is None


def test_geoparquet_in_another_crs_is_reprojected(tmp_path: Path) -> None:
    lonlat = shapely.box(4.3, 51.1, 4.4, 51.2)
    frame = geopandas.GeoDataFrame({"tile_id": ["a"], "geometry": [lonlat]}, crs="EPSG:4326").to_crs(32631)
    frame.to_parquet(tmp_path / "utm.parquet")
    (row,) = import_tasks(tmp_path / "utm.parquet")
    assert shapely.from_wkt(row["geometry"]).equals_exact(lonlat, tolerance=1e-6)


def test_literal_and_json_cells_are_parsed_and_plain_text_is_kept(tmp_path: Path) -> None:
    cells = ["['x', 'y']", '{"k": 1}', "[not a list", "plain"]
    pd.DataFrame({"a": cells}).to_csv(tmp_path / "t.csv", index=False)
    assert [row["parameters"]["a"] for row in import_tasks(tmp_path / "t.csv")] == [
        ["x", "y"], {"k": 1}, "[not a list", "plain"]


def test_bookkeeping_columns_are_not_parameters() -> None:
    assert {"id", "status", "backend_name", "costs", "cpu", "geometry", "tile_id"} <= BOOKKEEPING_COLUMNS


def test_a_parameter_named_like_a_bookkeeping_column_is_refused(store: Store, tmp_path: Path) -> None:
    campaign = store.create_campaign("c")
    store.add_tasks(campaign, [{"tile_id": "a", "parameters": {"status": 1}}])
    with pytest.raises(UpscaleError, match="status"):
        export_tasks(store, campaign, tmp_path / "x.csv")


def test_unknown_format_is_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(UpscaleError, match="format"):
        export_tasks(store, _campaign(store, 1), tmp_path / "x.xlsx")
    with pytest.raises(UpscaleError, match="format"):
        import_tasks(tmp_path / "x.json")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_large_export_is_read_and_written_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      suffix: str) -> None:
    count, chunk = 20_000, 3_000  # seven chunks, the last one short
    with Store.open(tmp_path / "big.sqlite") as store:
        campaign = store.create_campaign("big")
        store.add_tasks(campaign, ({"tile_id": f"t{i}", "parameters": {"n": i}} for i in range(count)))
        sizes: list[int] = []
        real = exchange._rows

        def spy(store: Store, rows: list[dict[str, Any]], kinds: Any) -> list[dict[str, Any]]:
            sizes.append(len(rows))
            return real(store, rows, kinds)

        monkeypatch.setattr(exchange, "_rows", spy)
        path = tmp_path / f"big{suffix}"
        assert export_tasks(store, campaign, path, chunk_size=chunk) == count
    assert len(sizes) == math.ceil(count / chunk) and max(sizes) == chunk
    if suffix == ".parquet":
        assert pq.ParquetFile(path).metadata.num_row_groups == len(sizes)
    rows = import_tasks(path)
    assert len(rows) == count and rows[-1]["tile_id"] == f"t{count - 1}"
    assert rows[-1]["parameters"] == {"n": count - 1}


# -- reading a file the client is rewriting ----------------------------------------------------------------


class Rewrites:
    """The `wait` of `read_job_rows`: each wait, the file becomes the next of ``contents`` (what a
    reader would see of a file another process rewrites), and the waits are counted, not slept."""

    def __init__(self, path: Path, contents: list[bytes]) -> None:
        self.path, self.contents = path, list(contents)
        self.waits: list[float] = []
        path.write_bytes(self.contents.pop(0))

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.contents:
            self.path.write_bytes(self.contents.pop(0))


def _table(tmp_path: Path, rows: int = 4) -> bytes:
    with Store.open(tmp_path / "t.sqlite") as store:
        export_tasks(store, _campaign(store, rows), tmp_path / "full.csv")
    return (tmp_path / "full.csv").read_bytes()


def test_a_file_cut_mid_row_is_read_again_until_complete(tmp_path: Path) -> None:
    full = _table(tmp_path)
    cut = full[: full.rindex(b"\n", 0, len(full) - 1) + 40]  # the last row cut after 40 bytes
    assert not cut.endswith(b"\n")
    wait = Rewrites(tmp_path / "jobs.csv", [cut, full])
    records = exchange.read_job_rows(tmp_path / "jobs.csv", wait=wait)
    assert [r["tile_id"] for r in records] == [r["tile_id"] for r in _rows(4)]
    # the cut read, then two complete reads that agree
    assert wait.waits == [exchange.READ_BACKOFF, 2 * exchange.READ_BACKOFF]


@pytest.mark.parametrize("first", [b"", b"id,backend_name,status\n"], ids=["empty", "header only"])
def test_an_empty_file_is_not_taken_as_no_rows(tmp_path: Path, first: bytes) -> None:
    full = _table(tmp_path)
    wait = Rewrites(tmp_path / "jobs.csv", [first, first, full])
    assert len(import_tasks(tmp_path / "jobs.csv", wait=wait)) == 4
    assert len(wait.waits) == 3


def test_a_row_count_that_drops_between_two_reads_is_read_again(tmp_path: Path) -> None:
    full = _table(tmp_path)
    # A rewrite caught right after a line break looks complete, with fewer rows.
    two_rows = full[: full.index(b"\n", full.index(b"\n", full.index(b"\n") + 1) + 1) + 1]
    wait = Rewrites(tmp_path / "jobs.csv", [full, two_rows, full, full])
    assert len(exchange.read_job_rows(tmp_path / "jobs.csv", wait=wait)) == 4
    assert len(wait.waits) == 3


def test_a_file_that_never_settles_is_an_error(tmp_path: Path) -> None:
    wait = Rewrites(tmp_path / "jobs.csv", [b"id,status\nj-1,runn"])
    with pytest.raises(UpscaleError, match=r"its last line is cut short \(read 6 times"):
        exchange.read_job_rows(tmp_path / "jobs.csv", wait=wait)
    assert wait.waits == [exchange.READ_BACKOFF * 2 ** i for i in range(exchange.READ_ATTEMPTS - 1)]


def test_a_parquet_file_without_its_footer_is_read_again(tmp_path: Path) -> None:
    with Store.open(tmp_path / "t.sqlite") as store:
        export_tasks(store, _campaign(store, 3), tmp_path / "full.parquet")
    full = (tmp_path / "full.parquet").read_bytes()
    wait = Rewrites(tmp_path / "jobs.parquet", [full[: len(full) // 2], full])
    assert len(import_tasks(tmp_path / "jobs.parquet", wait=wait)) == 3
