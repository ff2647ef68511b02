"""Downloading a finished job's result assets: safe names, resumable streams, verified atomic files.

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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
                    f"download of {shown} answered HTTP {status}", href=shown,
                    transient=status == 429 or status >= 500, retry_after=retry_after(response))
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


def download_results(session: requests.Session, item: Mapping[str, Any], folder: Path, *,
                     should_stop: Callable[[], bool] | None = None) -> list[Path]:
    """Download every asset of a job's results (a STAC item) into `folder`; returns their paths.

    Every name is checked before anything is downloaded, so an unsafe name writes nothing.
    ``should_stop`` interrupts the downloads between two pieces (see `download_asset`).
    """
    assets: Mapping[str, Any] = item.get("assets") or {}
    planned: list[tuple[str, Path, int | None, str | None]] = []
    for name, asset in assets.items():
        path = safe_asset_path(folder, name)
        if not isinstance(asset, Mapping):
            raise DownloadError(f"asset {name!r} is not an object", asset=name)
        href, size, checksum = asset.get("href"), asset.get("file:size"), asset.get("file:checksum")
        if not isinstance(href, str) or not href:
            raise DownloadError(f"asset {name!r} has no href", asset=name)
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise DownloadError(f"asset {name!r} has an invalid file:size {size!r}", asset=name)
        if checksum is not None and not isinstance(checksum, str):
            raise DownloadError(f"asset {name!r} has an invalid file:checksum {checksum!r}", asset=name)
        planned.append((href, path, size, checksum))
    return [download_asset(session, href, path, size=size, checksum=checksum, should_stop=should_stop)
            for href, path, size, checksum in planned]
