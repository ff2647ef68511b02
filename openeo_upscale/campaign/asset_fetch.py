"""Downloading a finished job's result assets: both result layouts, safe names, resumable streams,
verified atomic files, each asset on its own.

Asset names come from a backend and are untrusted: `safe_asset_path` keeps every file inside the
result folder. `download_asset` streams to `<name>.part`, resumes it with an HTTP Range request
after a crash, checks size and sha256 checksum when the item gives them, and only then renames
the file to its final name, so a final name always holds a complete, verified file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from openeo_upscale.campaign.client import retry_after
from openeo_upscale.errors import DownloadError

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
"""Bytes read from the response and written to disk at a time."""

DOWNLOAD_TIMEOUT = (10.0, 60.0)
"""Seconds to connect, and to wait for each piece of the response (not the whole download)."""

SHA256_MULTIHASH = "1220"
"""Multihash prefix of a sha256 digest: code 0x12, length 0x20 (32 bytes)."""

_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_asset_path(folder: Path, name: str) -> Path:
    """The path of asset `name` inside `folder`, or `DownloadError` if the name could escape it.

    Refused: empty names, NUL, backslashes, absolute paths, drive letters, empty, `.` or `..`
    segments, and any name that resolves outside `folder` (also through symlinks already there).
    Plain sub-paths such as `sub/openEO.tif` are allowed.
    """
    problem = _name_problem(name)
    if problem is None:
        root = folder.resolve()
        candidate = (root / name).resolve()
        if not candidate.is_relative_to(root) or candidate == root:
            problem = "resolves outside the result folder"
    if problem is not None:
        raise DownloadError(f"unsafe asset name {name!r}: {problem}", asset=name)
    return candidate


def _name_problem(name: str) -> str | None:
    """Why `name` is refused by its spelling alone, or None."""
    if not name:
        return "empty"
    if "\x00" in name:
        return "contains NUL"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is absolute"
    if _DRIVE.match(name):
        return "has a drive letter"
    segments = name.split("/")
    if ".." in segments:
        return "has a '..' segment"
    if any(segment in ("", ".") for segment in segments):
        return "has an empty or '.' segment"
    return None


def download_asset(
    session: requests.Session,
    href: str,
    target: Path,
    *,
    size: int | None,
    checksum: str | None,
    chunk: int = CHUNK_SIZE,
    timeout: float | tuple[float, float] = DOWNLOAD_TIMEOUT,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Download `href` to `target` and return `target`; a complete, verified target is kept as is.

    Bytes go to `<target>.part`; a `.part` left by an earlier attempt is resumed with a
    `Range: bytes=N-` request (a 200 answer restarts it from zero). When the download ends, the
    size and the sha256 multihash `checksum` are checked where given (other multihash codes are
    not checked); a file that fails is deleted and `DownloadError` names the failed check, a
    verified one is renamed to `target` atomically. Network errors leave the `.part` for a resume,
    and so does ``should_stop`` returning True between two pieces (a `DownloadError`, transient).
    """
    shown = _redact(href)
    digest = _sha256_hex(checksum, shown)
    if target.exists():
        failed = _failed_check(target, size, digest)
        if failed is None:
            log.debug("%s is already complete, not downloading %s again", target, shown)
            return target
        log.warning("%s exists but its %s does not match; downloading %s again", target, failed, shown)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        offset = 0
    if size is None or offset < size:
        _fetch(session, href, shown, part, offset, chunk, timeout, should_stop)
    failed = _failed_check(part, size, digest)
    if failed is not None:
        part.unlink(missing_ok=True)
        raise DownloadError(f"download of {shown} to {target} failed its {failed} check", href=shown)
    os.replace(part, target)
    log.info("downloaded %s to %s", shown, target)
    return target


def _fetch(session: requests.Session, href: str, shown: str, part: Path, offset: int, chunk: int,
           timeout: float | tuple[float, float], should_stop: Callable[[], bool] | None = None) -> None:
    """Stream `href` into `part`, appending from `offset` where the server honours the Range."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with session.get(href, headers=headers, stream=True, timeout=timeout) as response:
            if offset and response.status_code == 416:
                # Nothing beyond `offset`: the part is already whole; the checks decide.
                return
            if offset and response.status_code == 206:
                start = _content_range_start(response.headers.get("Content-Range"))
                if start != offset:
                    part.unlink(missing_ok=True)
                    raise DownloadError(
                        f"download of {shown} resumed at byte {start}, not at {offset}", href=shown)
                mode = "ab"
                log.debug("resuming %s at byte %d", shown, offset)
            elif response.status_code == 200:
                if offset:
                    log.debug("server ignored the Range of %s; restarting from zero", shown)
                mode = "wb"
            else:
                status = response.status_code
                raise DownloadError(
                    f"download of {shown} answered HTTP {status}", href=shown, status=status,
                    transient=is_transient_status(status), retry_after=retry_after(response))
            with part.open(mode) as file:
                for block in response.iter_content(chunk_size=chunk):
                    file.write(block)
                    if should_stop is not None and should_stop():
                        file.flush()
                        raise DownloadError(f"download of {shown} interrupted; its .part file resumes",
                                            href=shown, transient=True)
                file.flush()
                os.fsync(file.fileno())
    except requests.RequestException as exc:
        raise DownloadError(f"download of {shown} failed: {type(exc).__name__}: {exc}",
                            href=shown, transient=True) from exc



def _content_range_start(value: str | None) -> int | None:
    """The first byte of a `Content-Range: bytes N-M/T` header, or None."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    return int(match.group(1)) if match else None


def _sha256_hex(checksum: str | None, shown: str) -> str | None:
    """The sha256 hex digest in a multihash `checksum`, or None when there is nothing to check."""
    if checksum is None:
        return None
    value = checksum.lower()
    if not value.startswith(SHA256_MULTIHASH):
        log.debug("not checking %s: multihash %r is not sha256", shown, checksum[:4])
        return None
    digest = value[len(SHA256_MULTIHASH):]
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise DownloadError(f"checksum {checksum!r} of {shown} is not a valid sha256 multihash", href=shown)
    return digest


def _failed_check(path: Path, size: int | None, digest: str | None) -> str | None:
    """'size' or 'checksum' when `path` does not match, else None."""
    if size is not None and path.stat().st_size != size:
        return "size"
    if digest is not None and sha256_of(path) != digest:
        return "checksum"
    return None


def sha256_of(path: Path) -> str:
    """The hex sha256 digest of a file, read in `CHUNK_SIZE` pieces."""
    sha = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(CHUNK_SIZE), b""):
            sha.update(block)
    return sha.hexdigest()


def _redact(href: str) -> str:
    """`href` without its query: signed links carry their signature there, which is a credential."""
    parts = urlsplit(href)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def is_transient_status(status: int) -> bool:
    """Whether an HTTP error status may go away when asked again: a 5xx, 408 or 429."""
    return status >= 500 or status in (408, 429)


# -- result layouts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedAsset:
    """One asset to download: its name in the task folder, its link, where it goes, what to check."""

    name: str
    href: str
    path: Path
    size: int | None
    checksum: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """The asset as its item describes it."""


@dataclass
class Fetched:
    """What fetching a job's assets gave: the files on disk, and each asset that failed with why."""

    paths: list[Path] = field(default_factory=list)
    failed: dict[str, DownloadError] = field(default_factory=dict)


MAX_RESULT_PAGES = 10_000
"""Pages of item links followed at most (``rel="next"``), against a backend that never ends them."""


def _links(doc: Mapping[str, Any], rel: str) -> list[str]:
    return [str(link["href"]) for link in doc.get("links") or []
            if isinstance(link, Mapping) and link.get("rel") == rel and isinstance(link.get("href"), str)]


def result_items(doc: Mapping[str, Any], url: str, fetch: Callable[[str], Mapping[str, Any]]
                 ) -> list[tuple[str, Mapping[str, Any]]]:
    """The STAC items holding a job's result assets, each with the URL it was read from.

    The openEO API lets ``GET /jobs/{id}/results`` answer with an Item whose ``assets`` are the
    files, or with a Collection whose files sit in items it links (``rel="item"``, relative links
    resolved against the page's URL), the links paged with ``rel="next"``. The results document
    is one of the items when it has assets; ``fetch`` reads a linked document.
    """
    items: list[tuple[str, Mapping[str, Any]]] = []
    if doc.get("assets"):
        items.append((url, doc))
    seen_items: set[str] = set()
    seen_pages = {url}
    page, page_url = doc, url
    for _ in range(MAX_RESULT_PAGES):
        for link in _links(page, "item"):
            href = urljoin(page_url, link)
            if href not in seen_items:
                seen_items.add(href)
                items.append((href, fetch(href)))
        following = [urljoin(page_url, link) for link in _links(page, "next")]
        if not following or following[0] in seen_pages:
            break
        page_url = following[0]
        seen_pages.add(page_url)
        page = fetch(page_url)
    return items


def fetch_document(session: requests.Session, href: str, *,
                   timeout: float | tuple[float, float] = DOWNLOAD_TIMEOUT) -> Mapping[str, Any]:
    """A linked JSON document of a job's results (an item, a page of item links)."""
    shown = _redact(href)
    try:
        response = session.get(href, timeout=timeout)
    except requests.RequestException as exc:
        raise DownloadError(f"reading {shown} failed: {type(exc).__name__}: {exc}", href=shown,
                            transient=True) from exc
    if response.status_code >= 400:
        status = response.status_code
        raise DownloadError(f"reading {shown} answered HTTP {status}", href=shown, status=status,
                            transient=is_transient_status(status), retry_after=retry_after(response))
    try:
        doc = response.json()
    except ValueError as exc:
        raise DownloadError(f"{shown} is not JSON: {exc}", href=shown, transient=True) from exc
    if not isinstance(doc, Mapping):
        raise DownloadError(f"{shown} is not a JSON object", href=shown)
    return doc


def plan_assets(items: Sequence[tuple[str, Mapping[str, Any]]], folder: Path) -> list[PlannedAsset]:
    """The downloads of every asset of `items`, each name checked before anything is downloaded.

    An asset is saved under its name in the item; when several items name an asset alike, under
    ``<item id>/<name>``. Relative links are resolved against their item's URL. An unsafe name or a
    malformed asset raises `DownloadError` with no ``href``: no retry can help.
    """
    counts: dict[str, int] = {}
    for _, item in items:
        for name in item.get("assets") or {}:
            counts[name] = counts.get(name, 0) + 1
    planned: list[PlannedAsset] = []
    for url, item in items:
        assets = item.get("assets") or {}
        if not isinstance(assets, Mapping):
            raise DownloadError(f"the assets of {_redact(url)} are not an object")
        for name, asset in assets.items():
            key = str(name) if counts[name] == 1 else f"{item.get('id')}/{name}"
            path = safe_asset_path(folder, key)
            if not isinstance(asset, Mapping):
                raise DownloadError(f"asset {name!r} is not an object", asset=name)
            href, size, checksum = asset.get("href"), asset.get("file:size"), asset.get("file:checksum")
            if not isinstance(href, str) or not href:
                raise DownloadError(f"asset {name!r} has no href", asset=name)
            if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
                raise DownloadError(f"asset {name!r} has an invalid file:size {size!r}", asset=name)
            if checksum is not None and not isinstance(checksum, str):
                raise DownloadError(f"asset {name!r} has an invalid file:checksum {checksum!r}", asset=name)
            planned.append(PlannedAsset(key, urljoin(url, href), path, size, checksum, asset))
    return planned


def fetch_assets(session_for: Callable[[str], requests.Session], planned: Sequence[PlannedAsset], *,
                 skip: Collection[str] = (), should_stop: Callable[[], bool] | None = None) -> Fetched:
    """Download each planned asset on its own: one that fails does not stop the others.

    ``skip`` names assets not to try (known to fail for good). A stop (``should_stop``) raises
    the interrupted asset's `DownloadError`; a local disk error (`OSError`) stops everything and
    propagates, since every other file would meet it too.
    """
    fetched = Fetched()
    for asset in planned:
        if asset.name in skip:
            continue
        try:
            fetched.paths.append(download_asset(session_for(asset.href), asset.href, asset.path,
                                                size=asset.size, checksum=asset.checksum,
                                                should_stop=should_stop))
        except DownloadError as exc:
            if should_stop is not None and should_stop():
                raise
            exc.asset = asset.name
            fetched.failed[asset.name] = exc
    return fetched


def download_results(session: requests.Session, item: Mapping[str, Any], folder: Path, *,
                     should_stop: Callable[[], bool] | None = None) -> list[Path]:
    """Download every asset of one STAC item into `folder`; returns their paths.

    Every name is checked before anything is downloaded, so an unsafe name writes nothing. Each
    asset is tried even when another fails; then the first failure is raised.
    ``should_stop`` interrupts the downloads between two pieces (see `download_asset`).
    """
    fetched = fetch_assets(lambda _href: session, plan_assets([("", item)], folder), should_stop=should_stop)
    if fetched.failed:
        raise next(iter(fetched.failed.values()))
    return fetched.paths
