"""Generate openeo-upscale's own best-available-pixel (BAP) UDP, ``openeo_upscale/udp/bap_composite.json``.

The UDP takes the same parameters as ESA APEx's ``bap_composite`` (``geometry``,
``temporal_extent``, ``bands``, ``max_cloud_cover``) with a simpler algorithm:

1. load the requested Sentinel-2 L2A bands and, separately, SCL (20 m), keeping only scenes
   with ``eo:cloud_cover <= max_cloud_cover``;
2. per observation, a cloud flag from SCL (3 cloud shadow, 8 and 9 cloud, 10 thin cirrus);
3. a score per pixel and observation: one minus the Gaussian-weighted share of cloudy pixels
   around it (31 x 31 pixels at 20 m, sigma 5 pixels: far from clouds is better), plus a small
   bonus for observations near the middle of the month; cloudy pixels score -1;
4. per pixel and month, the observation with the highest score is kept (ties: the earliest),
   cloudy pixels are never kept, and the composite is one image per month, clipped to
   ``geometry``.

Run ``python scripts/make_bap_udp.py`` to write the JSON, ``--check`` to fail when the
committed file differs from what this script generates.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from openeo.api.process import Parameter
from openeo.internal.graph_building import PGNode
from openeo.processes import ProcessBuilder, array_apply, date_difference, process
from openeo.rest.datacube import DataCube
from openeo.rest.udp import build_process_dict

OUTPUT = Path(__file__).resolve().parents[1] / "openeo_upscale" / "udp" / "bap_composite.json"
"""Where the generated UDP is written."""

COLLECTION = "SENTINEL2_L2A"
CLOUD_CLASSES = (3, 8, 9, 10)
"""SCL classes never selected: cloud shadow, cloud (medium, high probability), thin cirrus."""
KERNEL_SIZE = 31
"""Side of the Gaussian kernel in 20 m pixels (about 600 m)."""
KERNEL_SIGMA = 5.0
"""Standard deviation of the Gaussian kernel in pixels."""
DAY_WEIGHT = 0.01
"""Weight of the mid-month bonus: it only separates observations equally far from clouds."""
BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
"""The bands the ``bands`` parameter accepts, as in the reference UDP."""


def gaussian_kernel(size: int = KERNEL_SIZE, sigma: float = KERNEL_SIGMA) -> list[list[float]]:
    """A normalised 2-D Gaussian kernel (sums to 1), rounded to 8 decimals for a stable JSON."""
    axis = np.arange(size, dtype=np.float64) - size // 2
    weights = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2.0 * sigma**2))
    weights /= weights.sum()
    return [[round(float(v), 8) for v in row] for row in weights]


def parameters() -> list[Parameter]:
    """The UDP's parameters: the names, schemas and defaults of the reference ``bap_composite``."""
    geometry = Parameter(
        name="geometry",
        description="Area of interest as a GeoJSON object; the composite is clipped to it.",
        schema={"type": "object", "subtype": "geojson"},
    )
    date_item = {"anyOf": [{"type": "string", "subtype": "date-time", "format": "date-time"},
                           {"type": "string", "subtype": "date", "format": "date"},
                           {"type": "null"}]}
    temporal_extent = Parameter(
        name="temporal_extent",
        description="Period to composite: start (inclusive) and end (exclusive) date or date-time.",
        schema={"type": "array", "subtype": "temporal-interval", "uniqueItems": True,
                "minItems": 2, "maxItems": 2, "items": date_item},
    )
    bands = Parameter(
        name="bands",
        description="Sentinel-2 L2A bands of the composite.",
        schema={"type": "array", "items": {"type": "string", "enum": BANDS}, "minItems": 1},
        default=["B04", "B03", "B02"],
    )
    max_cloud_cover = Parameter(
        name="max_cloud_cover",
        description="Scenes with a larger cloud cover (eo:cloud_cover, percent) are not used.",
        schema={"type": "integer", "minimum": 0, "maximum": 100},
        default=75,
    )
    return [geometry, temporal_extent, bands, max_cloud_cover]


def _is_cloud(data: ProcessBuilder) -> ProcessBuilder:
    scl = data.array_element(0)
    flag: ProcessBuilder = scl == CLOUD_CLASSES[0]
    for value in CLOUD_CLASSES[1:]:
        flag = flag.or_(scl == value)
    return flag


def _day_bonus(x: ProcessBuilder, label: ProcessBuilder) -> ProcessBuilder:
    # Day of the month minus one, as the days since the first of the label's month.
    first = process("date_replace_component", date=label, value=1, component="day")
    day = date_difference(first, label, unit="day")
    return x + DAY_WEIGHT * (1 - (day - 14).absolute() / 16)


def _not_best(data: ProcessBuilder) -> ProcessBuilder:
    best = data.max()
    return array_apply(data, lambda x: x != best)


def build(params: list[Parameter] | None = None) -> DataCube:
    """The BAP composite as a DataCube, built offline (no connection)."""
    geometry, temporal_extent, bands, max_cloud_cover = params or parameters()
    properties: dict[str, PGNode | Callable[..., Any]] = {
        "eo:cloud_cover": lambda value: value <= max_cloud_cover
    }
    reflectance = DataCube.load_collection(COLLECTION, connection=None, spatial_extent=geometry,
                                           temporal_extent=temporal_extent, bands=bands,
                                           properties=properties, fetch_metadata=False)
    scl = DataCube.load_collection(COLLECTION, connection=None, spatial_extent=geometry,
                                   temporal_extent=temporal_extent, bands=["SCL"],
                                   properties=properties, fetch_metadata=False)
    cloud = scl.reduce_dimension(dimension="bands", reducer=_is_cloud)
    cloud = cloud.apply(lambda x: x * 1.0)
    near_cloud = cloud.apply_kernel(kernel=gaussian_kernel(), factor=1.0, border="replicate")
    score = near_cloud.apply(lambda x: 1 - x)
    score = score.apply_dimension(dimension="t",
                                  process=lambda data: array_apply(data, _day_bonus))
    score = score.mask(cloud, replacement=-1)
    not_best = score.apply_neighborhood(
        process=_not_best,
        size=[{"dimension": "x", "value": 1, "unit": "px"}, {"dimension": "y", "value": 1, "unit": "px"},
              {"dimension": "t", "value": "month"}],
        overlap=[],
    )
    composite = reflectance.mask(not_best).mask(cloud)
    composite = composite.aggregate_temporal_period(period="month", reducer="first")
    return composite.filter_spatial(geometry)


def process_dict() -> dict[str, Any]:
    """The UDP document: id, summary, description, parameters and process graph."""
    params = parameters()
    return build_process_dict(
        build(params),
        process_id="bap_composite",
        summary="Best-available-pixel composite per month (openeo-upscale)",
        description=(
            "Per pixel and calendar month, the Sentinel-2 L2A observation farthest from clouds "
            "(SCL 3, 8, 9, 10 never selected; a 31 x 31 Gaussian of the 20 m cloud mask measures "
            "the distance, a small bonus prefers mid-month), among scenes with eo:cloud_cover <= "
            "max_cloud_cover; one image per month, clipped to the geometry. Generated by "
            "scripts/make_bap_udp.py in openeo-upscale; same parameters as ESA APEx's bap_composite."
        ),
        parameters=list[Parameter | dict[Any, Any]](params),
    )


def render() -> str:
    """The UDP as the exact text of ``bap_composite.json``."""
    return json.dumps(process_dict(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed JSON is not up to date")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="file to write or check")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            print(f"{args.output} is out of date: run python scripts/make_bap_udp.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
