"""Result downloads: against the real local backend, plus unit tests of asset-name safety."""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openeo
import pytest
import requests

from openeo_upscale.campaign import DownloadError, download_asset, download_results, safe_asset_path
from tests.backend.client_helpers import max_ndvi_job, run_to_end

ASSET = "openEO.tif"


class RecordingSession(requests.Session):
    """A real session that records the method, URL and headers of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self.statuses: list[int] = []

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        self.sent.append((str(method), str(url), dict(kwargs.get("headers") or {})))
        response = super().request(method, url, *args, **kwargs)
        self.statuses.append(response.status_code)
        return response


@pytest.fixture
def session() -> Iterator[RecordingSession]:
    with RecordingSession() as opened:
        yield opened


@pytest.fixture
def item(connection: openeo.Connection) -> dict[str, Any]:
    """The results (a STAC item) of a finished max_ndvi job on the local backend."""
    job = run_to_end(max_ndvi_job(connection, "downloads"))
    results: dict[str, Any] = connection.get(f"/jobs/{job.job_id}/results").json()
    assert ASSET in results["assets"]
    return results


def _sha256_multihash(data: bytes) -> str:
    return "1220" + hashlib.sha256(data).hexdigest()


def test_download_results_writes_verified_files(session: RecordingSession, item: dict[str, Any],
                                                tmp_path: Path) -> None:
    folder = tmp_path / "results"
    paths = download_results(session, item, folder)
    assert sorted(paths) == sorted(folder / name for name in item["assets"])
    data = (folder / ASSET).read_bytes()
    asset = item["assets"][ASSET]
    assert len(data) == asset["file:size"]
    assert _sha256_multihash(data) == asset["file:checksum"]
    assert not list(folder.rglob("*.part"))


def test_second_download_sends_nothing(session: RecordingSession, item: dict[str, Any],
                                       tmp_path: Path) -> None:
    folder = tmp_path / "results"
    download_results(session, item, folder)
    sent = len(session.sent)
    mtime = (folder / ASSET).stat().st_mtime_ns
    assert sent == len(item["assets"])
    download_results(session, item, folder)
    assert len(session.sent) == sent
    assert (folder / ASSET).stat().st_mtime_ns == mtime


def test_resume_sends_range_and_completes(session: RecordingSession, item: dict[str, Any],
                                          tmp_path: Path) -> None:
    asset = item["assets"][ASSET]
    data = requests.get(asset["href"], timeout=10).content
    target = tmp_path / ASSET
    part = tmp_path / (ASSET + ".part")
    half = len(data) // 2
    part.write_bytes(data[:half])
    download_asset(session, asset["href"], target, size=asset["file:size"], checksum=asset["file:checksum"])
    assert target.read_bytes() == data
    assert not part.exists()
    assert [headers.get("Range") for _, _, headers in session.sent] == [f"bytes={half}-"]
    assert session.statuses == [206]


def test_resume_restarts_when_range_is_ignored(item: dict[str, Any], tmp_path: Path) -> None:
    asset = item["assets"][ASSET]
    target = tmp_path / ASSET
    (tmp_path / (ASSET + ".part")).write_bytes(b"garbage that is not the file's start")

    class NoRange(requests.Session):
        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs.pop("headers", None)  # the server then answers 200 with the whole file
            return super().request(method, url, *args, **kwargs)

    with NoRange() as no_range:
        download_asset(no_range, asset["href"], target, size=asset["file:size"],
                       checksum=asset["file:checksum"])
    assert _sha256_multihash(target.read_bytes()) == asset["file:checksum"]


def test_wrong_checksum_leaves_nothing(session: RecordingSession, item: dict[str, Any],
                                       tmp_path: Path) -> None:
    bad = copy.deepcopy(item)
    checksum = bad["assets"][ASSET]["file:checksum"]
    bad["assets"][ASSET]["file:checksum"] = checksum[:-1] + ("0" if checksum[-1] != "0" else "1")
    folder = tmp_path / "results"
    with pytest.raises(DownloadError, match="checksum") as raised:
        download_results(session, bad, folder)
    assert raised.value.href is not None and "signature" not in str(raised.value)
    assert not (folder / ASSET).exists()
    assert not (folder / (ASSET + ".part")).exists()


def test_wrong_size_leaves_nothing(session: RecordingSession, item: dict[str, Any], tmp_path: Path) -> None:
    asset = item["assets"][ASSET]
    folder = tmp_path / "results"
    with pytest.raises(DownloadError, match="size"):
        download_asset(session, asset["href"], folder / ASSET, size=asset["file:size"] + 1, checksum=None)
    assert list(folder.iterdir()) == []


def test_other_multihash_is_not_checked(session: RecordingSession, item: dict[str, Any],
                                        tmp_path: Path) -> None:
    asset = item["assets"][ASSET]
    path = download_asset(session, asset["href"], tmp_path / ASSET, size=None, checksum="1114" + "00" * 20)
    assert _sha256_multihash(path.read_bytes()) == asset["file:checksum"]


def test_http_error_is_translated(session: RecordingSession, item: dict[str, Any], tmp_path: Path) -> None:
    href = item["assets"][ASSET]["href"].split("?")[0] + "?expires=1&signature=nope"
    with pytest.raises(DownloadError, match="HTTP 4"):
        download_asset(session, href, tmp_path / ASSET, size=None, checksum=None)
    assert not (tmp_path / ASSET).exists()


def test_connection_error_is_translated(session: RecordingSession, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="ConnectionError") as raised:
        download_asset(session, "http://127.0.0.1:9/x.tif", tmp_path / "x.tif", size=None, checksum=None)
    assert isinstance(raised.value.__cause__, requests.RequestException)


def test_unsafe_asset_name_writes_nothing_outside(session: RecordingSession, item: dict[str, Any],
                                                  tmp_path: Path) -> None:
    evil = copy.deepcopy(item)
    evil["assets"] = {"../../evil": item["assets"][ASSET]}
    folder = tmp_path / "a" / "results"
    with pytest.raises(DownloadError, match="evil"):
        download_results(session, evil, folder)
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path.parent / "evil").exists()
    assert session.sent == []


@pytest.mark.parametrize("name", ["../../evil", "/etc/passwd", "a/../../b", "..\\evil", "C:evil", "",
                                  "a\x00b", "sub/", "./x", "a//b", ".."])
def test_safe_asset_path_rejects(tmp_path: Path, name: str) -> None:
    with pytest.raises(DownloadError, match="unsafe asset name") as raised:
        safe_asset_path(tmp_path, name)
    assert raised.value.asset == name


def test_safe_asset_path_rejects_symlink_out(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    outside = tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    os.symlink(outside, folder / "link")
    with pytest.raises(DownloadError, match="outside"):
        safe_asset_path(folder, "link/x.tif")


def test_safe_asset_path_accepts_sub_paths(tmp_path: Path) -> None:
    assert safe_asset_path(tmp_path, "sub/x.tif") == tmp_path.resolve() / "sub" / "x.tif"
    later = tmp_path / "not-yet"
    assert safe_asset_path(later, "openEO.tif") == later.resolve() / "openEO.tif"
