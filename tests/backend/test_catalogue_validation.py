"""The ESA APEx catalogue's UDPs (``../shared/udp/apex-catalogue/``) against ``POST /validation``.

Each UDP is called by namespace, as a user would through the official client, with the
arguments a user gives: its parameters' defaults where it has them, else a small box or polygon
near Antwerp, two summer months, the first of an enum. Real mode is checked (only what the
engine implements is accepted) and simulated mode (the whole process catalogue).

Accepted before the catalogue's processes were added: 21 in real mode, 23 in simulated mode;
after: 24 in both; with ESA_WORLDCOVER_10M_2021_V2 served: 25; with SENTINEL1_GRD,
``sar_backscatter``, ``run_udf``, ``load_stac``, ``load_url``, ``aggregate_temporal`` and
``apply_polygon``: 38 in real mode, 39 in simulated mode (which also takes
sentinel1_sar_coherence's EOAP-CWL UDF, as Copernicus Data Space would). The rest call processes
of other namespaces (cropsar1d, cropsar2d, wind_turbine_detection), ``run_cwl_to_stac``,
``sen2like`` or ``load_ml_model``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openeo
import pytest

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.config import Mode
from tests.conftest import require_shared

CATALOGUE = ("udp", "apex-catalogue")
NAMESPACE = "https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/algorithm_catalog/{}"

BOX = {"west": 4.40, "south": 51.15, "east": 4.42, "north": 51.165}
"""About 1.4 x 1.7 km near Antwerp."""
POLYGON = {"type": "Polygon", "coordinates": [[[4.40, 51.15], [4.42, 51.15], [4.42, 51.165], [4.40, 51.165],
                                               [4.40, 51.15]]]}
PERIOD = ["2023-06-01", "2023-08-01"]

NEEDED_THESE_PROCESSES = {
    "timeseries_statistics": "quantiles, text_concat, load_collection without spatial_extent",
    "fapar": "pi",
    "leaf_area_index": "pi",
}
"""The UDPs refused before only for processes that are now implemented."""
ACCEPTED = {
    "apa_aquatic_plants_algae", "atmospheric_resistant_vegetation_index", "bais2", "bap_composite",
    "barren_soil", "cloudless_mosaic", "cohen_braaten_yang_cloud_detection", "enhanced_vegetation_index",
    "fire_boundary", "hollstein_cloud_detection", "kernel_ndvi", "mago_water_quality", "max_ndvi",
    "max_ndvi_composite", "monthly_composite", "ndci_cyanobacteria", "ndsi",
    "plant-senescence-reflectance-index", "snow_classifier", "swbm", "wildfire_visualization",
    "worldcover_statistics", *NEEDED_THESE_PROCESSES,
    # SENTINEL1_GRD and sar_backscatter
    "sentinel1_soil_moisture", "sentinel1_stats", "urban_areas",
    # run_udf (and apply_polygon, SENTINEL1_GRD)
    "biopar", "eurac_pv_farm_detection", "parcel_delineation", "variabilitymap", "sentinel1_changedetection",
    # load_stac, load_url (and aggregate_temporal)
    "ppi", "scmap_composite", "UHI_per_pixel", "RAMONA-herbaceous_rangeland_biomass-country-mosaick",
    "udp_obsgession_w23_lai",
}
"""The 38 UDPs /validation accepts in both modes (the issue asks for at least 36)."""


def example_value(parameter: dict[str, Any]) -> Any:
    """What a user would pass for a UDP parameter without a default."""
    schemas = parameter.get("schema")
    for schema in schemas if isinstance(schemas, list) else [schemas]:
        if not isinstance(schema, dict):
            continue
        subtype = schema.get("subtype")
        if subtype == "bounding-box":
            return BOX
        if subtype == "geojson":
            return POLYGON
        if subtype == "temporal-interval":
            return PERIOD
        if subtype == "date" or parameter["name"].endswith("date"):
            return PERIOD[1] if "end" in parameter["name"] else PERIOD[0]
        if "enum" in schema:
            return schema["enum"][0]
        if schema.get("type") == "integer":
            return 12
    return "x"


def udp_call(path: Path) -> tuple[str, str, dict[str, Any]]:
    """(process id, namespace URL, arguments) of a call to the UDP in `path`."""
    udp = json.loads(path.read_text())
    arguments = {p["name"]: example_value(p) for p in udp.get("parameters", [])
                 if "default" not in p and not p.get("optional")}
    return udp["id"], NAMESPACE.format(f"{udp['id']}/openeo_udp/{path.name}"), arguments


def refusals(connection: openeo.Connection, path: Path) -> list[str]:
    """The messages of /validation for a call of the UDP in `path` (none when accepted)."""
    process_id, namespace, arguments = udp_call(path)
    cube = connection.datacube_from_process(process_id, namespace=namespace, **arguments)
    return [str(error["message"]) for error in connection.validate_process_graph(cube)]


@pytest.fixture(scope="module", params=[Mode.REAL, Mode.SIMULATED], ids=["real", "simulated"])
def connection(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[openeo.Connection]:
    folder = require_shared(*CATALOGUE)
    config = BackendConfig(state_dir=tmp_path_factory.mktemp("backend"), udp_dirs=(folder,),
                           mode=request.param)
    with LocalBackend(config) as backend:
        yield openeo.connect(backend.url).authenticate_basic("demo", "demo")


@pytest.mark.parametrize("name", sorted(NEEDED_THESE_PROCESSES))
def test_validation_accepts_the_udps_that_needed_these_processes(connection: openeo.Connection,
                                                                 name: str) -> None:
    path = require_shared(*CATALOGUE, f"{name}.json")
    assert refusals(connection, path) == [], NEEDED_THESE_PROCESSES[name]


def test_validation_accepts_at_least_the_38(connection: openeo.Connection) -> None:
    folder = require_shared(*CATALOGUE)
    udps = sorted(folder.glob("*.json"))
    assert len(udps) == 46
    accepted = {json.loads(path.read_text())["id"] for path in udps if not refusals(connection, path)}
    missing = ACCEPTED - accepted
    assert not missing, f"no longer accepted: {sorted(missing)}"
    assert len(accepted) >= 36


def test_cdse_load_collection_arguments_and_scl_dilation_mask(connection: openeo.Connection) -> None:
    """A graph as the catalogue writes it: no spatial extent (a filter gives it), CDSE's
    featureflags, the SCL dilation mask with its parameters; an unknown parameter is refused."""
    def graph(**mask_arguments: Any) -> dict[str, Any]:
        return {"process_graph": {
            "load": {"process_id": "load_collection", "arguments": {
                "id": "SENTINEL2_L2A", "temporal_extent": PERIOD, "bands": ["SCL"],
                "featureflags": {"tilesize": 128}}},
            "clip": {"process_id": "filter_spatial", "arguments": {"data": {"from_node": "load"},
                                                                   "geometries": POLYGON}},
            "mask": {"process_id": "to_scl_dilation_mask", "arguments": {"data": {"from_node": "clip"},
                                                                         **mask_arguments},
                     "result": True},
        }}
    cdse = {"erosion_kernel_size": 3, "kernel1_size": 17, "kernel2_size": 77, "mask1_values": [2, 4, 5, 6, 7],
            "mask2_values": [3, 8, 9, 10, 11], "scl_band_name": "SCL"}
    assert connection.validate_process_graph(graph(**cdse)) == []
    (error,) = connection.validate_process_graph(graph(kernel3_size=5))
    assert error["code"] == "ProcessParameterUnsupported" and "kernel3_size" in error["message"]


def test_processes_describes_the_new_processes(connection: openeo.Connection) -> None:
    specs = {spec["id"]: spec for spec in connection.list_processes()}
    for pid in ("quantiles", "text_concat", "array_interpolate_linear", "mask_polygon",
                "resample_cube_spatial", "to_scl_dilation_mask", "pi", "e"):
        assert pid in specs, pid
    mask = specs["to_scl_dilation_mask"]
    assert mask["experimental"] is True and mask["returns"]["schema"]["subtype"] == "datacube"
    defaults = {p["name"]: p.get("default") for p in mask["parameters"]}
    assert defaults == {"data": None, "erosion_kernel_size": 0, "mask1_values": [2, 4, 5, 6, 7],
                        "mask2_values": [3, 8, 9, 10, 11], "kernel1_size": 17, "kernel2_size": 201,
                        "scl_band_name": None}
    load = {p["name"]: p for p in specs["load_collection"]["parameters"]}
    assert load["spatial_extent"]["optional"] and load["featureflags"]["optional"]
    assert specs["text_concat"]["returns"]["schema"] == {"type": "string"}
