"""The project's own best-available-pixel UDP (``openeo_upscale/udp/bap_composite.json``).

The committed JSON is what ``scripts/make_bap_udp.py`` generates, and the UDP runs by process id
as a batch job through the official client on the local backend in real mode, served from the
package (no ``shared/`` folder configured): one GeoTIFF per month whose every pixel is one
cloud-free observation of that month.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import numpy as np
import openeo
import pytest
import rasterio

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.config import Mode
from openeo_upscale.backend.data import sentinel2
from openeo_upscale.backend.engine import implemented
from openeo_upscale.udp import UDP_DIR

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_bap_udp.py"
GEOMETRY = {"type": "Polygon", "coordinates": [[[4.400, 51.150], [4.429, 51.150], [4.429, 51.168],
                                                [4.400, 51.168], [4.400, 51.150]]]}
"""About 2 x 2 km near Antwerp."""
PERIOD = ["2023-05-01", "2023-07-01"]
CLOUD = (3, 8, 9, 10)


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_bap_udp", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_is_what_the_script_generates() -> None:
    script = _script()
    committed = (UDP_DIR / "bap_composite.json").read_text(encoding="utf-8")
    assert committed == script.render()
    document = json.loads(committed)
    assert document["id"] == "bap_composite"
    params = {p["name"]: p for p in document["parameters"]}
    assert list(params) == ["geometry", "temporal_extent", "bands", "max_cloud_cover"]
    assert params["bands"]["default"] == ["B04", "B03", "B02"]
    assert params["max_cloud_cover"]["default"] == 75
    assert script.main(["--check"]) == 0


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "bap.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert _script().main(["--check", "--output", str(stale)]) == 1


def _process_ids(graph: dict[str, object]) -> set[str]:
    found = set()
    for node in graph.values():
        assert isinstance(node, dict)
        found.add(node["process_id"])
        stack = list(node["arguments"].values())
        while stack:
            value = stack.pop()
            if isinstance(value, dict) and "process_graph" in value:
                found |= _process_ids(value["process_graph"])
            elif isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
    return found


def test_uses_only_processes_the_engine_implements() -> None:
    document = json.loads((UDP_DIR / "bap_composite.json").read_text(encoding="utf-8"))
    assert _process_ids(document["process_graph"]) <= implemented()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    """Real mode with only the package's UDPs."""
    with LocalBackend(BackendConfig(state_dir=tmp_path / "backend", mode=Mode.REAL)) as running:
        yield running


def test_runs_by_process_id_one_cloud_free_observation_per_pixel_and_month(
    backend: LocalBackend, tmp_path: Path
) -> None:
    connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
    namespace = f"{backend.api_url}/udp/bap_composite.json"
    cube = connection.datacube_from_process("bap_composite", namespace=namespace, geometry=GEOMETRY,
                                            temporal_extent=PERIOD)
    job = cube.create_job(title="own bap")
    job.start_and_wait(max_poll_interval=0.5, print=lambda *_: None)
    paths = sorted(asset.download(tmp_path / asset.key) for asset in job.get_results().get_assets())
    assert [p.name for p in paths] == ["openEO_2023-05-01Z.tif", "openEO_2023-06-01Z.tif"]
    for path, month in zip(paths, (5, 6), strict=True):
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 32631 and src.res == (10.0, 10.0)
            assert src.descriptions == ("B04", "B03", "B02")
            got = src.read().astype("float64")
            epsg, bounds = src.crs.to_epsg(), tuple(src.bounds)
        valid = np.isfinite(got).all(axis=0)
        assert valid.mean() > 0.9
        assert np.nanmin(got) >= 1 and np.nanmax(got) <= 10000
        # Every valid pixel is one observation of its month (all three bands of the same scene)
        # whose SCL there is not cloud or shadow.
        scenes = [s for s in sentinel2.acquisitions(epsg, bounds, date(2023, month, 1),
                                                   date(2023, month + 1, 1)) if s.cloud_cover <= 75]
        data = sentinel2.load(epsg, bounds, [s.date for s in scenes], ["B04", "B03", "B02", "SCL"])
        obs = data.values.astype("float64")  # (t, bands, y, x)
        assert obs.shape[2:] == got.shape[1:]
        clear = ~np.isin(obs[:, 3], CLOUD)
        same = (obs[:, :3] == got[None]).all(axis=1)
        assert (same & clear).any(axis=0)[valid].all()
        # Inside the area (away from the edges, where the UTM grid's corners fall outside the
        # lon/lat rectangle), every pixel with a clear observation that month has a value.
        inner = (slice(5, -5), slice(5, -5))
        assert valid[inner][clear.any(axis=0)[inner]].all()
