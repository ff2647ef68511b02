"""Collection metadata served by the local backend (STAC collections with datacube fields)."""

from __future__ import annotations

from typing import Any

S2_BANDS: list[dict[str, Any]] = [
    {"name": "B01", "common_name": "coastal", "center_wavelength": 0.443, "gsd": 60},
    {"name": "B02", "common_name": "blue", "center_wavelength": 0.490, "gsd": 10},
    {"name": "B03", "common_name": "green", "center_wavelength": 0.560, "gsd": 10},
    {"name": "B04", "common_name": "red", "center_wavelength": 0.665, "gsd": 10},
    {"name": "B05", "common_name": "rededge", "center_wavelength": 0.705, "gsd": 20},
    {"name": "B06", "common_name": "rededge", "center_wavelength": 0.740, "gsd": 20},
    {"name": "B07", "common_name": "rededge", "center_wavelength": 0.783, "gsd": 20},
    {"name": "B08", "common_name": "nir", "center_wavelength": 0.842, "gsd": 10},
    {"name": "B8A", "common_name": "nir08", "center_wavelength": 0.865, "gsd": 20},
    {"name": "B09", "common_name": "nir09", "center_wavelength": 0.945, "gsd": 60},
    {"name": "B11", "common_name": "swir16", "center_wavelength": 1.610, "gsd": 20},
    {"name": "B12", "common_name": "swir22", "center_wavelength": 2.190, "gsd": 20},
    {"name": "SCL", "description": "Scene classification map", "gsd": 20},
]

_SENTINEL2_L2A: dict[str, Any] = {
    "stac_version": "1.0.0",
    "type": "Collection",
    "id": "SENTINEL2_L2A",
    "title": "Sentinel-2 L2A (synthetic)",
    "description": (
        "Synthetic Sentinel-2 Level-2A surface reflectance, generated on the fly. Values are a "
        "pure function of (UTM zone, absolute pixel index, date, band), so adjacent tiles agree "
        "pixel for pixel and reruns are bit-identical. A scene every 5 days with a per-scene "
        "`eo:cloud_cover`; reflectances in 0-10000 DN; SCL classes consistent with clouds "
        "(8, 9, 10), cloud shadows (3), vegetation (4), bare soil (5), water (6) and snow (11)."
    ),
    "license": "proprietary",
    "keywords": ["sentinel-2", "synthetic", "l2a"],
    "providers": [{"name": "openeo-upscale", "roles": ["producer", "host"]}],
    "extent": {
        "spatial": {"bbox": [[-180.0, -80.0, 180.0, 84.0]]},
        "temporal": {"interval": [["2017-03-28T00:00:00Z", None]]},
    },
    "links": [],
    "cube:dimensions": {
        "x": {
            "type": "spatial",
            "axis": "x",
            "extent": [-180.0, 180.0],
            "step": 10,
            "reference_system": {"name": "UTM zone of the area"},
        },
        "y": {
            "type": "spatial",
            "axis": "y",
            "extent": [-80.0, 84.0],
            "step": 10,
            "reference_system": {"name": "UTM zone of the area"},
        },
        "t": {"type": "temporal", "extent": ["2017-03-28T00:00:00Z", None], "step": "P5D"},
        "bands": {"type": "bands", "values": [b["name"] for b in S2_BANDS]},
    },
    "summaries": {
        "eo:bands": S2_BANDS,
        "eo:cloud_cover": {"minimum": 0, "maximum": 100},
        "gsd": [10, 20, 60],
        "platform": ["sentinel-2a", "sentinel-2b"],
        "constellation": ["sentinel-2"],
    },
}

COLLECTIONS: dict[str, dict[str, Any]] = {"SENTINEL2_L2A": _SENTINEL2_L2A}


def collection_links(collection: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A copy of `collection` with self/root/parent links pointing at this server."""
    out = dict(collection)
    cid = collection["id"]
    out["links"] = [
        {"rel": "self", "href": f"{base_url}/collections/{cid}", "type": "application/json"},
        {"rel": "root", "href": f"{base_url}/", "type": "application/json"},
        {"rel": "parent", "href": f"{base_url}/collections", "type": "application/json"},
    ]
    return out
