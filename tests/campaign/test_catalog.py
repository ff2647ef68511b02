"""The campaign's STAC collection: local hrefs, task geometry and projection, backend metadata, tolerance."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
import pytest
import shapely

from openeo_upscale.campaign import Store, TaskState
from openeo_upscale.campaign.catalog import BACKEND_ITEM_NAME, build_collection, load_collection
from openeo_upscale.errors import StoreError, UpscaleError

_S = TaskState
_TO_DONE = [(_S.PENDING, _S.CREATING), (_S.CREATING, _S.QUEUED), (_S.QUEUED, _S.RUNNING),
            (_S.RUNNING, _S.FINISHED), (_S.FINISHED, _S.DOWNLOADING)]
SIGNED = "https://backend.test/jobs/{job}/results/assets/{name}?expires=1&signature=secret"


def _tile(index: int) -> dict[str, Any]:
    west, south = 590_000 + 5000 * index, 5_660_000
    lon = 4.30 + 0.07 * index
    return {"tile_id": f"32631_{west}_{south}_5000", "epsg": 32631, "west": west, "south": south,
            "east": west + 5000, "north": south + 5000,
            "geometry": shapely.box(lon, 51.10, lon + 0.07, 51.15).wkt,
            "parameters": {"temporal_extent": ["2024-05-01", "2024-07-01"]}}


def _backend_item(job_id: str, names: list[str]) -> dict[str, Any]:
    """An item the way the local backend (and openEO backends generally) describe a job's results."""
    return {
        "stac_version": "1.0.0", "type": "Feature", "id": job_id,
        "stac_extensions": ["https://stac-extensions.github.io/file/v2.1.0/schema.json",
                            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
        "bbox": [4.0, 51.0, 4.1, 51.1],
        "geometry": shapely.geometry.mapping(shapely.box(4.0, 51.0, 4.1, 51.1)),
        "properties": {"datetime": None, "start_datetime": "2024-05-01T00:00:00Z",
                       "end_datetime": "2024-07-01T00:00:00Z", "openeo:status": "finished"},
        "assets": {name: {"href": SIGNED.format(job=job_id, name=name),
                          "type": "image/tiff; application=geotiff",
                          "roles": ["data"], "file:size": 5, "proj:epsg": 32631, "proj:shape": [64, 64],
                          "raster:bands": [{"name": "NDVI", "data_type": "int16"}]}
                   for name in names},
        "links": [{"rel": "self", "href": f"https://backend.test/jobs/{job_id}/results"}],
    }


def _finish(store: Store, task_id: int, files: list[Path], job_id: str) -> None:
    for from_state, to_state in _TO_DONE:
        assert store.transition(task_id, from_state, to_state, actor="test", job_id=job_id, backend="local")
    assert store.transition(task_id, _S.DOWNLOADING, _S.DONE, actor="test", attempts=1, costs=1.5,
                            finished=datetime(2024, 8, 1, tzinfo=UTC), result_paths=[str(f) for f in files])


def _campaign(store: Store, out: Path, count: int = 3, *, item_json: bool = True) -> int:
    """A campaign of ``count`` tiles, all but the last done, with downloaded files."""
    campaign = store.create_campaign("antwerp", config={"defaults": {}})
    store.add_tasks(campaign, [_tile(i) for i in range(count)])
    for task in store.tasks_in(campaign, _S.PENDING)[:-1]:
        folder = out / task.tile_id
        folder.mkdir(parents=True)
        names = ["openEO.tif", "sub/extra.tif"]
        files = []
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"tiff!")
            files.append(folder / name)
        job_id = f"j-{task.id}"
        if item_json:
            (folder / BACKEND_ITEM_NAME).write_text(json.dumps(_backend_item(job_id, names)))
        _finish(store, task.id, files, job_id)
    return campaign


def test_collection_round_trips_with_local_relative_hrefs(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "results"
    campaign = _campaign(store, out)
    path = build_collection(store, campaign, out, title="Antwerp NDVI")
    assert path == (out / "collection.json").resolve()

    collection = load_collection(path)
    assert collection.id == f"campaign-{campaign}"
    assert collection.title == "Antwerp NDVI"
    items = sorted(collection.get_items(), key=lambda item: item.id)
    done = sorted(store.tasks_in(campaign, _S.DONE), key=lambda task: task.tile_id)
    assert [item.id for item in items] == [task.tile_id for task in done]
    for item, task in zip(items, done, strict=True):
        assert Path(item.get_self_href() or "") == (out / task.tile_id / f"{task.tile_id}.json").resolve()
        assert set(item.assets) == {"openEO.tif", "sub/extra.tif"}
        for asset in item.assets.values():
            assert Path(asset.get_absolute_href() or "").read_bytes() == b"tiff!"
            assert asset.media_type == "image/tiff; application=geotiff"
            assert asset.extra_fields["file:size"] == 5
            assert asset.extra_fields["proj:code"] == "EPSG:32631"
            assert "proj:epsg" not in asset.extra_fields
        assert item.properties["proj:code"] == "EPSG:32631"
        assert item.properties["proj:bbox"] == [task.west, task.south, task.east, task.north]
        assert item.bbox == list(shapely.from_wkt(task.geometry).bounds)
        assert item.common_metadata.start_datetime == datetime(2024, 5, 1, tzinfo=UTC)
        assert item.common_metadata.end_datetime == datetime(2024, 7, 1, tzinfo=UTC)
        assert item.properties["upscale:state"] == "done"
        assert item.properties["upscale:job_id"] == task.job_id
        assert item.properties["upscale:backend"] == "local"
        assert item.properties["upscale:attempts"] == 1
        assert item.properties["upscale:costs"] == 1.5
        assert not any("projection/v1" in uri for uri in item.stac_extensions)

    bbox = collection.extent.spatial.bboxes[0]
    assert bbox[0] == pytest.approx(4.30) and bbox[2] == pytest.approx(4.30 + 0.07 + 0.07)
    assert collection.extent.temporal.intervals[0] == [datetime(2024, 5, 1, tzinfo=UTC),
                                                       datetime(2024, 7, 1, tzinfo=UTC)]


def test_no_backend_url_or_signature_is_written(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "results"
    build_collection(store, _campaign(store, out), out)
    written = [p for p in out.rglob("*.json") if p.name != BACKEND_ITEM_NAME]
    assert len(written) == 3
    for path in written:
        text = path.read_text()
        assert "signature" not in text and "backend.test" not in text
        assert str(tmp_path) not in text


def test_missing_or_corrupt_backend_item_falls_back_to_the_task(store: Store, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "results"
    campaign = _campaign(store, out, item_json=False)
    first, second = store.tasks_in(campaign, _S.DONE)
    (out / second.tile_id / BACKEND_ITEM_NAME).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="openeo_upscale.campaign.catalog"):
        collection = load_collection(build_collection(store, campaign, out))
    assert sum("cataloguing from the task alone" in r.getMessage() for r in caplog.records) == 2
    item = collection.get_item(first.tile_id)
    assert item is not None
    # The campaign's temporal extent (here: the task's parameters) stands in for the backend's.
    assert item.common_metadata.start_datetime == datetime(2024, 5, 1, tzinfo=UTC)
    assert item.properties["proj:code"] == "EPSG:32631"
    asset = item.assets["openEO.tif"]
    assert asset.media_type == "image/tiff" and asset.roles == ["data"]


def test_without_any_time_the_finished_time_is_the_datetime(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "results"
    campaign = store.create_campaign("c")
    row = _tile(0) | {"parameters": {}, "geometry": None}
    store.add_tasks(campaign, [row])
    (task,) = store.tasks_in(campaign, _S.PENDING)
    (out / task.tile_id).mkdir(parents=True)
    (out / task.tile_id / "a.nc").write_bytes(b"x")
    _finish(store, task.id, [out / task.tile_id / "a.nc"], "j")
    item = next(iter(load_collection(build_collection(store, campaign, out)).get_items()))
    assert item.datetime == datetime(2024, 8, 1, tzinfo=UTC)
    assert item.geometry is None and item.bbox is None


def test_missing_result_file_is_left_out(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "results"
    campaign = _campaign(store, out, count=2)
    (task,) = store.tasks_in(campaign, _S.DONE)
    (out / task.tile_id / "sub" / "extra.tif").unlink()
    item = next(iter(load_collection(build_collection(store, campaign, out)).get_items()))
    assert set(item.assets) == {"openEO.tif"}


def test_item_file_never_overwrites_a_result(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "results"
    campaign = store.create_campaign("c")
    store.add_tasks(campaign, [_tile(0)])
    (task,) = store.tasks_in(campaign, _S.PENDING)
    clash = out / task.tile_id / f"{task.tile_id}.json"
    clash.parent.mkdir(parents=True)
    clash.write_text('{"result": true}')
    _finish(store, task.id, [clash], "j")
    item = next(iter(load_collection(build_collection(store, campaign, out)).get_items()))
    assert json.loads(clash.read_text()) == {"result": True}
    assert Path(item.get_self_href() or "").name == f"{task.tile_id}.stac-item.json"


def test_empty_campaign_gives_an_empty_valid_collection(store: Store, tmp_path: Path) -> None:
    campaign = store.create_campaign("empty")
    collection = load_collection(build_collection(store, campaign, tmp_path / "out"))
    assert list(collection.get_items()) == []


def test_unknown_campaign_is_a_store_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no campaign"):
        build_collection(store, 999, tmp_path)


def test_load_collection_reports_dangling_hrefs(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "results"
    campaign = _campaign(store, out, count=2)
    path = build_collection(store, campaign, out)
    (task,) = store.tasks_in(campaign, _S.DONE)
    (out / task.tile_id / "openEO.tif").unlink()
    with pytest.raises(UpscaleError, match="does not resolve to a file"):
        load_collection(path)


def test_files_match_the_core_stac_schemas_pystac_ships(store: Store, tmp_path: Path) -> None:
    """Offline JSON-schema check against the STAC 1.1 item/collection schemas inside pystac."""
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from pystac.validation.local_validator import get_local_schema_cache

    cache = get_local_schema_cache()
    registry = referencing.Registry().with_resources(
        [(uri, referencing.Resource.from_contents(schema)) for uri, schema in cache.items()])
    base = f"https://schemas.stacspec.org/v{pystac.get_stac_version()}"
    out = tmp_path / "results"
    path = build_collection(store, _campaign(store, out), out)
    docs = [("collection", path)] + [("item", p) for p in out.glob("*/*.json") if p.name != BACKEND_ITEM_NAME]
    for kind, file in docs:
        schema = cache[f"{base}/{kind}-spec/json-schema/{kind}.json"]
        validator = jsonschema.Draft7Validator(schema, registry=registry)
        errors = [error.message for error in validator.iter_errors(json.loads(file.read_text()))]
        assert errors == [], file
