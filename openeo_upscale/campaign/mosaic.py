"""A campaign's downloaded results, checked and stitched: `verify_results` and `build_mosaic`.

`verify_results` compares every file of every done task with its entry in the task folder's
``item.json`` (``file:size``, ``file:checksum`` as a sha256 multihash). `build_mosaic` groups the
done tasks' GeoTIFFs by file name (one group per date label, e.g. ``openEO_2023-05-01Z.tif``)
and writes, per group, one Cloud-Optimized GeoTIFF per band over the whole area and a PNG
quick-look.

Tiles of a grid abut without sharing pixels, so a plain merge (first valid pixel wins) is
seamless. When a group's tiles lie in several CRSs (a grid across UTM zones), the mosaic is in
the CRS with the most tiles; the other tiles are warped onto that CRS's pixel grid with
nearest-neighbour resampling, so the native tiles keep their exact values.

A tile that was split after running out of memory is not done: its quadrants are, and they hold
exactly its pixels (cut on its pixel grid, see `split`), so the mosaic has no hole there.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.merge import merge
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from openeo_upscale.campaign.asset_fetch import SHA256_MULTIHASH, sha256_of
from openeo_upscale.campaign.download_pool import ITEM_FILE, task_folder
from openeo_upscale.campaign.models import CampaignSettings, Task
from openeo_upscale.campaign.states import TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.errors import CampaignError

log = logging.getLogger(__name__)

MOSAIC_DIR = "mosaic"
"""Sub-folder of the campaign's output folder where mosaics go by default."""

QUICKLOOK_SIZE = 1024
"""Longest side of a PNG quick-look, in pixels."""

STRETCH_PERCENTILES = (2.0, 98.0)
"""Per-band percentiles mapped to the darkest and brightest grey of a quick-look."""

GEOTIFF_SUFFIXES = (".tif", ".tiff")
"""File name endings of the results that are mosaicked."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class ProblemKind(enum.StrEnum):
    """What is wrong with a result file."""

    MISSING = "missing"
    """The file (or every file of a done task) is not on disk."""
    CORRUPT = "corrupt"
    """Its size or sha256 checksum differs from the item's."""
    UNVERIFIABLE = "unverifiable"
    """Nothing to check it against: no item.json, no asset entry, or neither size nor sha256."""


@dataclass(frozen=True)
class Problem:
    """One result file of a done task that is missing, corrupt or cannot be checked."""

    task_id: int
    tile_id: str
    path: str
    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        return f"task {self.task_id} ({self.tile_id}): {self.kind} {self.path}: {self.detail}"


def output_dir_of(store: Store, campaign_id: int) -> Path:
    """The campaign's output folder, as the `Campaign` reads it from the stored configuration."""
    return CampaignSettings.from_dict(store.campaign(campaign_id)["config"]).results_folder


def _done_tasks(store: Store, campaign_id: int) -> Iterator[Task]:
    for task in store.all_tasks(campaign_id):
        if task.state is TaskState.DONE:
            yield task


# verification -----------------------------------------------------------------------------------


def verify_results(store: Store, campaign_id: int) -> list[Problem]:
    """Every problem with the result files of the campaign's done tasks; empty when all is fine.

    Each file in a task's ``result_paths`` must exist and match the size and sha256 checksum of its
    asset in the task folder's ``item.json`` (matched by its name within the folder, else by its
    file name). Checksums in another multihash than sha256 are not checked.
    """
    output_dir = output_dir_of(store, campaign_id)
    problems: list[Problem] = []
    for task in _done_tasks(store, campaign_id):
        problems.extend(_verify_task(task, output_dir))
    return problems


def _verify_task(task: Task, output_dir: Path) -> list[Problem]:
    def problem(path: str, kind: ProblemKind, detail: str) -> Problem:
        return Problem(task.id, task.tile_id, path, kind, detail)

    folder = task_folder(output_dir, task.tile_id)
    if not task.result_paths:
        return [problem(str(folder), ProblemKind.MISSING, "the task is done but recorded no result files")]
    assets, why_not = _item_assets(folder / ITEM_FILE)
    found: list[Problem] = []
    for name in task.result_paths:
        path = Path(name)
        if not path.is_file():
            found.append(problem(name, ProblemKind.MISSING, "no such file"))
            continue
        if assets is None:
            found.append(problem(name, ProblemKind.UNVERIFIABLE, why_not))
            continue
        asset = _asset_for(path, folder, assets)
        if asset is None:
            found.append(problem(name, ProblemKind.UNVERIFIABLE, f"no asset of that name in {ITEM_FILE}"))
            continue
        kind, detail = _check(path, asset)
        if kind is not None:
            found.append(problem(name, kind, detail))
    return found


def _item_assets(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The item's assets, or None and why not."""
    try:
        item = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no {ITEM_FILE} in the task folder"
    except (OSError, ValueError) as exc:
        return None, f"{ITEM_FILE} is unreadable: {exc}"
    assets = item.get("assets") if isinstance(item, dict) else None
    if not isinstance(assets, dict):
        return None, f"{ITEM_FILE} has no assets"
    return assets, ""


def _asset_for(path: Path, folder: Path, assets: dict[str, Any]) -> dict[str, Any] | None:
    """The asset entry of `path`: by its name inside the task folder, else by its file name."""
    try:
        relative = path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        relative = None
    if relative is not None and isinstance(assets.get(relative), dict):
        return dict(assets[relative])
    for key, asset in assets.items():
        if isinstance(asset, dict) and Path(str(key)).name == path.name:
            return dict(asset)
    return None


def _check(path: Path, asset: dict[str, Any]) -> tuple[ProblemKind | None, str]:
    """Compare a file with its asset entry: (None, "") when it matches."""
    size, checksum = asset.get("file:size"), asset.get("file:checksum")
    digest: str | None = None
    if isinstance(checksum, str) and checksum.lower().startswith(SHA256_MULTIHASH):
        digest = checksum.lower()[len(SHA256_MULTIHASH):]
    has_size = isinstance(size, int) and not isinstance(size, bool)
    if not has_size and digest is None:
        return ProblemKind.UNVERIFIABLE, "the asset gives neither file:size nor a sha256 file:checksum"
    actual_size = path.stat().st_size
    if has_size and actual_size != size:
        return ProblemKind.CORRUPT, f"size {actual_size} bytes, expected {size}"
    if digest is not None:
        actual = sha256_of(path)
        if actual != digest:
            return ProblemKind.CORRUPT, f"sha256 {actual}, expected {digest}"
    return None, ""


# mosaics ----------------------------------------------------------------------------------------


def build_mosaic(store: Store, campaign_id: int, output_dir: str | Path | None = None) -> list[Path]:
    """Write a COG per date label and band, and a PNG quick-look per date label; return their paths.

    The done tasks' GeoTIFFs are grouped by file name; group ``<label>.tif`` gives
    ``<output_dir>/<label>_<band>.tif`` per band (named by the band description, else ``band<n>``)
    and ``<output_dir>/<label>.png``. ``output_dir`` defaults to the campaign's output folder's
    ``mosaic`` sub-folder. Files listed but absent are skipped (see `verify_results`).
    Each band is merged straight to disk in windows, so memory stays bounded by rasterio's
    ``mem_limit``, not by the area.
    """
    target = Path(output_dir) if output_dir is not None else output_dir_of(store, campaign_id) / MOSAIC_DIR
    groups = _groups(store, campaign_id)
    written: list[Path] = []
    if groups:
        target.mkdir(parents=True, exist_ok=True)
    for name, paths in sorted(groups.items()):
        label = _safe(Path(name).stem)
        written.extend(_mosaic_group(label, paths, target))
        log.info("mosaic %s: %d tile(s) into %s", label, len(paths), target)
    return written


def _groups(store: Store, campaign_id: int) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for task in _done_tasks(store, campaign_id):
        for name in task.result_paths or []:
            path = Path(name)
            if path.suffix.lower() not in GEOTIFF_SUFFIXES:
                continue
            if not path.is_file():
                log.warning("task %s (%s): result %s is missing; left out of the mosaic",
                            task.id, task.tile_id, path)
                continue
            groups.setdefault(path.name, []).append(path)
    return groups


def _mosaic_group(label: str, paths: Sequence[Path], target: Path) -> list[Path]:
    with ExitStack() as stack:
        opened: list[DatasetReader] = [stack.enter_context(rasterio.open(p)) for p in paths]
        first = opened[0]
        count, nodata = first.count, first.nodata
        for ds, path in zip(opened, paths, strict=True):
            if ds.count != count:
                raise CampaignError(f"cannot mosaic {label}: {path} has {ds.count} band(s), "
                                    f"{paths[0]} has {count}")
        sources = _in_one_crs(opened, stack)
        names = _band_names(first)
        written: list[Path] = []
        for band in range(1, count + 1):
            out = target / f"{label}_{names[band - 1]}.tif"
            _write_band(sources, band, nodata, out, names[band - 1])
            written.append(out)
    written.append(_quicklook(written[:3] if count >= 3 else written[:1], target / f"{label}.png"))
    return written


def _in_one_crs(opened: list[DatasetReader], stack: ExitStack) -> list[Any]:
    """The datasets, those outside the most common CRS warped onto its pixel grid."""
    crss = Counter(ds.crs.to_wkt() if ds.crs else "" for ds in opened)
    if len(crss) == 1:
        return list(opened)
    wanted = crss.most_common(1)[0][0]
    reference = next(ds for ds in opened if (ds.crs.to_wkt() if ds.crs else "") == wanted)
    crs = CRS.from_wkt(wanted)
    xres, yres = reference.res
    origin_x, origin_y = reference.transform.c, reference.transform.f
    sources: list[Any] = []
    for ds in opened:
        if ds.crs is not None and ds.crs.to_wkt() == wanted:
            sources.append(ds)
            continue
        west, south, east, north = transform_bounds(ds.crs, crs, *ds.bounds, densify_pts=21)
        # Snap the warped tile to the reference grid so that native tiles are never resampled.
        left = origin_x + math.floor((west - origin_x) / xres) * xres
        top = origin_y - math.floor((origin_y - north) / yres) * yres
        width = math.ceil((east - left) / xres)
        height = math.ceil((top - south) / yres)
        vrt = WarpedVRT(ds, crs=crs, transform=Affine(xres, 0, left, 0, -yres, top), width=width,
                        height=height, resampling=Resampling.nearest, nodata=ds.nodata)
        sources.append(stack.enter_context(vrt))
    return sources


def _band_names(ds: DatasetReader) -> list[str]:
    names: list[str] = []
    for index, description in enumerate(ds.descriptions, start=1):
        name = _safe(description) if description else ""
        if not name or name in names:
            name = f"band{index}"
        names.append(name)
    return names


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("_") or "result"


def _cog_driver() -> str | None:
    with rasterio.Env() as env:
        return "COG" if "COG" in env.drivers() else None


def _write_band(sources: list[Any], band: int, nodata: float | None, out: Path, description: str) -> None:
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".mosaic-") as scratch:
        merged = Path(scratch) / "merged.tif"
        with warnings.catch_warnings():
            # rasterio 1.4's merge still multiplies Affines with `*`, which affine >= 3.1 deprecates.
            warnings.filterwarnings("ignore", message="Use `@` matmul", category=PendingDeprecationWarning)
            merge(sources, indexes=[band], nodata=nodata, dst_path=merged,
                  dst_kwds={"tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"})
        with rasterio.open(merged, "r+") as ds:
            ds.set_band_description(1, description)
        if _cog_driver() is not None:
            rasterio.shutil.copy(merged, out, driver="COG", compress="deflate", overview_resampling="average")
            return
        # No COG driver: a tiled GeoTIFF with internal overviews, close to a COG.
        with rasterio.open(merged, "r+") as ds:
            factors = [2**i for i in range(1, 16) if max(ds.width, ds.height) / 2**i >= 256]
            ds.build_overviews(factors, Resampling.average)
        rasterio.shutil.copy(merged, out, driver="GTiff", tiled=True, compress="deflate",
                             copy_src_overviews=True)


def _quicklook(bands: Sequence[Path], out: Path) -> Path:
    """A PNG of one band (grey) or three (RGB), stretched 2-98 %, nodata transparent."""
    layers: list[np.ndarray] = []
    valid: np.ndarray | None = None
    transform, crs = Affine.identity(), None
    for path in bands:
        with rasterio.open(path) as ds:
            scale = max(1.0, max(ds.width, ds.height) / QUICKLOOK_SIZE)
            shape = (max(1, min(QUICKLOOK_SIZE, round(ds.height / scale))),
                     max(1, min(QUICKLOOK_SIZE, round(ds.width / scale))))
            data = ds.read(1, out_shape=shape, resampling=Resampling.nearest, masked=True)
            transform = ds.transform @ Affine.scale(ds.width / shape[1], ds.height / shape[0])
            crs = ds.crs
        mask = ~np.ma.getmaskarray(data)
        if np.issubdtype(data.dtype, np.floating):
            mask &= np.isfinite(data.filled(0))
        valid = mask if valid is None else valid & mask
        layers.append(np.asarray(data.filled(0), dtype="float64"))
    assert valid is not None
    alpha = np.where(valid, 255, 0).astype("uint8")
    picture = np.stack([*(_stretch(layer, valid) for layer in layers), alpha])
    # PNG keeps no georeferencing; without PAM GDAL writes no .aux.xml beside it either.
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
        out, "w", driver="PNG", width=picture.shape[2], height=picture.shape[1], count=picture.shape[0],
        dtype="uint8", transform=transform, crs=crs,
    ) as ds:
        ds.write(picture)
    return out


def _stretch(layer: np.ndarray, valid: np.ndarray) -> np.ndarray:
    values = layer[valid]
    if values.size == 0:
        return np.zeros(layer.shape, dtype="uint8")
    low, high = np.percentile(values, STRETCH_PERCENTILES)
    span = high - low if high > low else 1.0
    scaled = np.clip((layer - low) / span, 0.0, 1.0) * 255.0
    return np.where(valid, np.round(scaled), 0).astype("uint8")
