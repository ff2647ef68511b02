"""UDP namespaces resolve offline: URL by file name, file path, folder name."""

from __future__ import annotations

from pathlib import Path

import pytest

from openeo_upscale.backend.errors import ProcessUnsupported
from openeo_upscale.backend.udp import UdpResolver
from tests.conftest import BAP_URL, MAX_NDVI_URL


def test_namespace_url_resolves_to_local_file(udp_dir: Path) -> None:
    resolver = UdpResolver((udp_dir,), allow_http=False)
    assert resolver.resolve(BAP_URL, "bap_composite")["id"] == "bap_composite"
    assert resolver.resolve(MAX_NDVI_URL, "max_ndvi")["id"] == "max_ndvi"


def test_file_path_namespace_inside_a_udp_folder(udp_dir: Path) -> None:
    resolver = UdpResolver((udp_dir,), allow_http=False)
    doc = resolver.resolve(str(udp_dir / "max_ndvi.json"), "max_ndvi")
    assert {p["name"] for p in doc["parameters"]} == {"bbox", "temporal_extent"}


def test_a_file_outside_the_udp_folders_is_refused_like_a_missing_one(udp_dir: Path, tmp_path: Path) -> None:
    """The answer tells nothing about the server's disk: an existing file outside the folders,
    a missing one and a path that climbs out of a folder all get the same message."""
    outside = tmp_path / "max_ndvi.json"
    outside.write_text((udp_dir / "max_ndvi.json").read_text())
    resolver = UdpResolver((udp_dir,))
    messages = set()
    for namespace in (str(outside), str(tmp_path / "missing.json"), f"{udp_dir}/../{udp_dir.name}/../x.json",
                      "/etc/passwd", "/etc/nothere.json"):
        with pytest.raises(ProcessUnsupported) as caught:
            resolver.resolve(namespace, "max_ndvi")
        messages.add(caught.value.message.replace(namespace, "<ns>"))
    assert messages == {"Process 'max_ndvi' is not available in namespace '<ns>'."}


def test_wrong_process_id_in_namespace(udp_dir: Path) -> None:
    resolver = UdpResolver((udp_dir,), allow_http=False)
    with pytest.raises(ProcessUnsupported, match="defines 'max_ndvi'"):
        resolver.resolve(MAX_NDVI_URL, "other")


def test_unresolvable_url_without_http(tmp_path: Path) -> None:
    resolver = UdpResolver((tmp_path,), allow_http=False)
    with pytest.raises(ProcessUnsupported, match="no local copy"):
        resolver.resolve("https://example.invalid/x/none.json", "none")


def test_local_names_list_only_udps(tmp_path: Path, udp_dir: Path) -> None:
    (tmp_path / "not_a_udp.json").write_text('{"hello": 1}')
    (tmp_path / "broken.json").write_text("{")
    resolver = UdpResolver((tmp_path, udp_dir))
    names = resolver.local_names()
    assert {"bap_composite", "max_ndvi", "max_ndvi_composite"} <= set(names)
    assert "not_a_udp" not in names and "broken" not in names
    assert "bap_composite.benchmark_scenario" not in names
