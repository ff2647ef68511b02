"""One STAC collection over a campaign's results: one item per done task, pointing at the local files.

`build_collection` writes ``<output_dir>/collection.json`` and, for each task in state ``done``, an
item at ``<output_dir>/<tile_id>/<tile_id>.json`` (pystac's best-practice layout) next to the files
the download step put there. The catalog is self-contained: every link and asset href is relative,
and asset hrefs point at the downloaded files, never at the backend's links (which may carry
signatures). Items are written one at a time, so memory does not grow with the campaign.

An item takes from the task: its id (the tile id), geometry and bbox (the task's lon/lat WKT), the
projection (``proj:code`` and ``proj:bbox`` from the tile's EPSG code and UTM extent) and the
``upscale:`` bookkeeping (state, backend, job id, attempts, costs; ``upscale:split_from``, the tile
id it replaces, on each quadrant of a tile that ran out of memory and was split: the split tile
itself has no results and no item, its quadrants cover it). It takes from the backend's
``item.json`` in the task folder, when it is readable: the datetimes, the asset metadata (``type``,
``roles``, ``title``, ``file:checksum``, ``eo:bands``, ``raster:bands``, ``proj:*``; ``proj:epsg``
becomes ``proj:code``), and the geometry when the task has none. A missing or corrupt ``item.json``
only costs that metadata (a warning is logged); datetimes then come from the campaign's
``temporal_extent`` (task parameters, then the campaign config or its ``defaults``), and last from
the time the task finished.

What `load_collection` validates, offline: the collection and every item read back with pystac,
every link and asset href is relative and resolves to an existing file inside the catalog folder,
item ids are unique, and each item's parent and collection are the collection. pystac's JSON-schema
validation needs the network (extension schemas are fetched by URL), so it is not used here; the
tests also check the files against the core STAC schemas that pystac ships, when ``jsonschema`` is
installed.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pystac
import shapely
import shapely.geometry
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension

from openeo_upscale.campaign.models import Task
from openeo_upscale.campaign.split import parent_of
from openeo_upscale.campaign.states import TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.errors import UpscaleError

__all__ = ["BACKEND_ITEM_NAME", "COLLECTION_NAME", "UPSCALE_PREFIX", "build_collection", "load_collection"]

log = logging.getLogger(__name__)

COLLECTION_NAME = "collection.json"
"""File name of the collection, in the campaign's output folder."""

BACKEND_ITEM_NAME = "item.json"
"""File name of the backend's STAC item of a job's results, in the task folder."""

UPSCALE_PREFIX = "upscale:"
"""Prefix of the openeo-upscale properties of an item."""

READ_CHUNK = 1000
"""Done tasks read from the store at a time."""

_ASSET_FIELDS = ("title", "description", "roles", "file:checksum", "file:header_size", "eo:bands",
                 "raster:bands", "bands", "proj:code", "proj:shape", "proj:bbox", "proj:transform",
                 "proj:wkt2", "proj:projjson", "nodata", "data_type", "gsd")
"""Asset fields copied from the backend's item (``href`` never is; ``file:size`` is measured)."""

_NO_TIME: datetime | None = None
"""An open end of a temporal extent."""

_REPLACED_EXTENSIONS = ("/projection/", "/file/")
"""Extensions whose backend version is replaced by pystac's (fields are rewritten to match it)."""


def build_collection(store: Store, campaign_id: int, output_dir: str | os.PathLike[str], *,
                     collection_id: str | None = None, title: str | None = None) -> Path:
    """Write the campaign's STAC collection and one item per done task; return the collection's path.

    ``output_dir`` is the campaign's result folder (task folders ``<output_dir>/<tile_id>/``).
    Raises `StoreError` for an unknown campaign.
    """
    root = Path(output_dir).resolve()
    campaign = store.campaign(campaign_id)
    name = str(campaign["name"])
    config: Mapping[str, Any] = campaign["config"] or {}
    collection = pystac.Collection(
        id=collection_id or f"campaign-{campaign_id}",
        title=title or name,
        description=f"Results of the openeo-upscale campaign {name!r} (id {campaign_id}), one item per tile.",
        extent=pystac.Extent(pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
                             pystac.TemporalExtent([[_NO_TIME, _NO_TIME]])),
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    collection_path = root / COLLECTION_NAME
    collection.set_self_href(str(collection_path))
    extent = _ExtentAccumulator()
    written = 0
    split = {task.tile_id
             for task in store.all_tasks(campaign_id, chunk=READ_CHUNK, states=[TaskState.SPLIT])}
    for task in store.all_tasks(campaign_id, chunk=READ_CHUNK, states=[TaskState.DONE]):
        item = _item_for(task, root, config)
        if item is None:
            continue
        parent = parent_of(task.tile_id)
        if parent is not None and parent in split:
            item.properties[f"{UPSCALE_PREFIX}split_from"] = parent
        item.set_root(collection)
        item.set_parent(collection)
        item.set_collection(collection)
        _save(item)
        collection.add_link(pystac.Link(pystac.RelType.ITEM, item.get_self_href() or "",
                                        media_type=pystac.MediaType.GEOJSON))
        extent.add(item)
        written += 1
    collection.extent = extent.extent()
    root.mkdir(parents=True, exist_ok=True)
    _save(collection)
    log.info("campaign %s: wrote %s with %d items", campaign_id, collection_path, written)
    return collection_path


def load_collection(path: str | os.PathLike[str]) -> pystac.Collection:
    """Read a collection written by `build_collection` and check it (see the module docstring).

    Raises `UpscaleError` listing the problems found.
    """
    collection_path = Path(path).resolve()
    try:
        collection = pystac.Collection.from_file(str(collection_path))
        items = list(collection.get_items())
    except (OSError, ValueError, pystac.STACError) as exc:
        raise UpscaleError(f"cannot read the STAC collection {collection_path}: {exc}") from exc
    root = collection_path.parent
    problems = _link_problems(collection_path, root)
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            problems.append(f"item id {item.id!r} appears twice")
        seen.add(item.id)
        item_path = Path(item.get_self_href() or "")
        problems.extend(_link_problems(item_path, root))
        if item.get_parent() is not collection or item.get_collection() is not collection:
            problems.append(f"item {item.id!r}: its parent or collection is not {collection.id!r}")
    if problems:
        raise UpscaleError(f"STAC collection {collection_path} is invalid: " + "; ".join(problems))
    return collection


# -- items -------------------------------------------------------------------------------------------


def _save(stac_object: pystac.STACObject) -> None:
    """Write a STAC object to its self href, atomically: the runners of a campaign that end at the
    same moment each write the collection, and a reader (or another writer) must never meet a file
    that is half written. Each writer has its own temporary file; the last rename wins."""
    path = Path(str(stac_object.get_self_href()))
    doc = stac_object.to_dict(include_self_link=False, transform_hrefs=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        partial.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _item_for(task: Task, root: Path, config: Mapping[str, Any]) -> pystac.Item | None:
    """The item of one done task, with its self href set, or None when its folder is unusable."""
    folder = (root / task.tile_id).resolve()
    if not folder.is_relative_to(root) or folder == root:
        log.warning("task %s (tile %s): tile id is not a safe folder name; no item", task.id, task.tile_id)
        return None
    backend_item = _backend_item(task, folder)
    geometry, bbox = _geometry(task, backend_item)
    start, end, instant = _datetimes(task, backend_item, config)
    properties: dict[str, Any] = {
        f"{UPSCALE_PREFIX}task_id": task.id,
        f"{UPSCALE_PREFIX}state": task.state.value,
        f"{UPSCALE_PREFIX}backend": task.backend,
        f"{UPSCALE_PREFIX}job_id": task.job_id,
        f"{UPSCALE_PREFIX}attempts": task.attempts,
        f"{UPSCALE_PREFIX}costs": task.costs,
    }
    item = pystac.Item(id=task.tile_id, geometry=geometry, bbox=bbox, datetime=instant,
                       start_datetime=start, end_datetime=end, properties=properties,
                       stac_extensions=_kept_extensions(backend_item))
    if task.epsg is not None:
        projection = ProjectionExtension.ext(item, add_if_missing=True)
        projection.code = f"EPSG:{task.epsg}"
        utm = [task.west, task.south, task.east, task.north]
        if all(value is not None for value in utm):
            projection.bbox = [float(value) for value in utm if value is not None]
    item_path = _item_path(task, folder)
    item.set_self_href(str(item_path))
    backend_assets: Mapping[str, Any] = backend_item.get("assets") or {} if backend_item else {}
    for file in task.result_paths or []:
        asset = _asset_for(task, folder, Path(file), backend_assets)
        if asset is not None:
            key, value = asset
            item.add_asset(key, value)
    if any("file:size" in asset.extra_fields for asset in item.assets.values()):
        FileExtension.add_to(item)
    if any(key.startswith("proj:") for asset in item.assets.values() for key in asset.extra_fields):
        ProjectionExtension.add_to(item)
    return item


def _item_path(task: Task, folder: Path) -> Path:
    """``<tile_id>.json`` in the task folder, unless a result file or the backend item has that name."""
    taken = {Path(path).resolve() for path in task.result_paths or []} | {folder / BACKEND_ITEM_NAME}
    for name in (f"{task.tile_id}.json", f"{task.tile_id}.stac-item.json"):
        if folder / name not in taken:
            return folder / name
    count = 1
    while (candidate := folder / f"{task.tile_id}.stac-item-{count}.json") in taken:
        count += 1
    return candidate


def _asset_for(task: Task, folder: Path, file: Path, backend_assets: Mapping[str, Any]
               ) -> tuple[str, pystac.Asset] | None:
    """The asset of one downloaded file, keyed by its path in the task folder, or None if unusable."""
    path = (folder / file).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        log.warning("task %s (tile %s, job %s on %s): result %s is missing or outside %s; not catalogued",
                    task.id, task.tile_id, task.job_id, task.backend, file, folder)
        return None
    key = path.relative_to(folder).as_posix()
    meta = _backend_asset(key, backend_assets)
    media_type = meta.get("type") or mimetypes.guess_type(path.name)[0]
    extra = {name: meta[name] for name in _ASSET_FIELDS if name in meta and name not in ("title", "roles")}
    if "proj:epsg" in meta and "proj:code" not in extra and meta["proj:epsg"] is not None:
        extra["proj:code"] = f"EPSG:{meta['proj:epsg']}"
    extra["file:size"] = path.stat().st_size
    title = meta.get("title") if isinstance(meta.get("title"), str) else None
    roles = meta.get("roles") if isinstance(meta.get("roles"), list) else ["data"]
    # The item file is in the task folder, so the asset's href relative to it is its key.
    return key, pystac.Asset(href=f"./{key}", media_type=media_type, title=title, roles=roles,
                             extra_fields=extra)


def _backend_asset(key: str, backend_assets: Mapping[str, Any]) -> Mapping[str, Any]:
    """The backend's metadata of the asset saved as ``key``: by asset name, else by href file name."""
    found = backend_assets.get(key)
    if isinstance(found, Mapping):
        return found
    name = PurePosixPath(key).name
    for asset in backend_assets.values():
        href = asset.get("href") if isinstance(asset, Mapping) else None
        if isinstance(href, str) and PurePosixPath(urlsplit(href).path).name == name:
            return asset
    return {}


def _backend_item(task: Task, folder: Path) -> dict[str, Any] | None:
    """The backend's item of the task's results, or None (with a warning) when absent or unreadable."""
    path = folder / BACKEND_ITEM_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("task %s (tile %s, job %s on %s): cannot read %s (%s); cataloguing from the task alone",
                    task.id, task.tile_id, task.job_id, task.backend, path, exc)
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("assets") or {}, dict):
        log.warning("task %s (tile %s, job %s on %s): %s is not a STAC item; cataloguing from the task alone",
                    task.id, task.tile_id, task.job_id, task.backend, path)
        return None
    return doc


def _kept_extensions(backend_item: Mapping[str, Any] | None) -> list[str]:
    """The backend's extension URIs whose fields the item keeps, without those pystac's replace."""
    uris = (backend_item or {}).get("stac_extensions") or []
    return [uri for uri in uris
            if isinstance(uri, str) and not any(part in uri for part in _REPLACED_EXTENSIONS)]


def _geometry(task: Task, backend_item: Mapping[str, Any] | None
              ) -> tuple[dict[str, Any] | None, list[float] | None]:
    """GeoJSON geometry and bbox: the task's lon/lat geometry, else the backend item's, else none."""
    if task.geometry:
        try:
            text = task.geometry.strip()
            shape = shapely.from_geojson(text) if text.startswith("{") else shapely.from_wkt(text)
        except shapely.errors.ShapelyError as exc:
            log.warning("task %s (tile %s): unreadable geometry (%s); using the backend's", task.id,
                        task.tile_id, exc)
        else:
            if not shape.is_empty:
                return dict(shapely.geometry.mapping(shape)), [float(v) for v in shape.bounds]
    if backend_item:
        geometry = backend_item.get("geometry")
        bbox = backend_item.get("bbox")
        if isinstance(geometry, dict):
            if not (isinstance(bbox, list) and len(bbox) in (4, 6)):
                bbox = [float(v) for v in shapely.geometry.shape(geometry).bounds]
            return geometry, [float(v) for v in bbox]
        extent_bbox = _get(backend_item, "extent", "spatial", "bbox")
        if isinstance(extent_bbox, list) and extent_bbox and isinstance(extent_bbox[0], list):
            w, s, e, n = (float(v) for v in extent_bbox[0][:4])
            return dict(shapely.geometry.mapping(shapely.box(w, s, e, n))), [w, s, e, n]
    return None, None


def _datetimes(task: Task, backend_item: Mapping[str, Any] | None, config: Mapping[str, Any]
               ) -> tuple[datetime | None, datetime | None, datetime | None]:
    """``(start, end, instant)``: the backend's, else the campaign's temporal extent, else finished."""
    if backend_item:
        props = backend_item.get("properties") or {}
        start = _parse(props.get("start_datetime"))
        end = _parse(props.get("end_datetime"))
        instant = _parse(props.get("datetime"))
        interval = _get(backend_item, "extent", "temporal", "interval")
        if start is None and end is None and instant is None and isinstance(interval, list) and interval:
            first = interval[0] if isinstance(interval[0], list) else []
            start, end = (_parse(first[0]), _parse(first[1])) if len(first) == 2 else (None, None)
        if start is not None and end is not None:
            return start, end, instant
        if instant is not None:
            return None, None, instant
    extent = _temporal_extent(task, config)
    if extent is not None:
        return extent[0], extent[1], None
    instant = task.finished or task.updated
    return None, None, instant


def _temporal_extent(task: Task, config: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """The campaign's ``temporal_extent`` for this task, when both ends parse."""
    defaults = config.get("defaults")
    for source in (task.parameters, config, defaults if isinstance(defaults, Mapping) else {}):
        value = source.get("temporal_extent")
        if isinstance(value, list | tuple) and len(value) == 2:
            start, end = _parse(value[0]), _parse(value[1])
            if start is not None and end is not None:
                return start, end
    return None


def _parse(value: Any) -> datetime | None:
    """A timezone-aware datetime from an RFC 3339 string or a date, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _get(doc: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)  # type: ignore[assignment]
    return doc


# -- collection --------------------------------------------------------------------------------------


@dataclass
class _ExtentAccumulator:
    """The union of the items' bboxes and time ranges, kept as running min/max."""

    bbox: list[float] | None = None
    start: datetime | None = None
    end: datetime | None = None

    def add(self, item: pystac.Item) -> None:
        if item.bbox is not None:
            # A 3D bbox is [west, south, min z, east, north, max z].
            w, s, e, n = (item.bbox[i] for i in ((0, 1, 3, 4) if len(item.bbox) == 6 else (0, 1, 2, 3)))
            if self.bbox is None:
                self.bbox = [w, s, e, n]
            else:
                self.bbox = [min(self.bbox[0], w), min(self.bbox[1], s), max(self.bbox[2], e),
                             max(self.bbox[3], n)]
        props = item.common_metadata
        for value in (props.start_datetime, props.end_datetime, item.datetime):
            if value is not None:
                self.start = value if self.start is None else min(self.start, value)
                self.end = value if self.end is None else max(self.end, value)

    def extent(self) -> pystac.Extent:
        bbox = self.bbox if self.bbox is not None else [-180.0, -90.0, 180.0, 90.0]
        return pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[self.start, self.end]]))


def _link_problems(path: Path, root: Path) -> list[str]:
    """Absolute, remote or dangling hrefs in the STAC file at ``path`` (as written on disk)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{path}: unreadable ({exc})"]
    hrefs = [("link", link.get("href")) for link in doc.get("links") or []]
    hrefs += [("asset", asset.get("href")) for asset in (doc.get("assets") or {}).values()]
    problems = []
    for kind, href in hrefs:
        if not isinstance(href, str) or not href:
            problems.append(f"{path.name}: a {kind} has no href")
            continue
        if "://" in href or href.startswith("/") or Path(href).is_absolute():
            problems.append(f"{path.name}: {kind} href {href!r} is not relative")
            continue
        target = (path.parent / href).resolve()
        if not target.is_relative_to(root):
            problems.append(f"{path.name}: {kind} href {href!r} leaves the catalog folder")
        elif not target.is_file():
            problems.append(f"{path.name}: {kind} href {href!r} does not resolve to a file")
    return problems
