"""Process-graph validation: every problem names the node and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from openeo_upscale.backend.udp import UdpResolver
from openeo_upscale.backend.validation import GraphValidator
from tests.conftest import MAX_NDVI_URL


def _no_user_processes(_pid: str) -> dict[str, Any] | None:
    return None


@pytest.fixture
def validator(udp_dir: Path) -> GraphValidator:
    return GraphValidator(UdpResolver((udp_dir,), allow_http=False))


def _messages(validator: GraphValidator, graph: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.code, p.message) for p in validator.errors({"process_graph": graph}, _no_user_processes)]


def test_reference_udps_validate_cleanly(validator: GraphValidator, udp_dir: Path) -> None:
    for name in ("max_ndvi", "max_ndvi_composite", "bap_composite"):
        doc = json.loads((udp_dir / f"{name}.json").read_text())
        assert validator.errors(doc, _no_user_processes) == [], name


def test_udp_call_by_namespace_url(validator: GraphValidator) -> None:
    call = {"m": {"process_id": "max_ndvi", "namespace": MAX_NDVI_URL, "result": True,
                  "arguments": {"bbox": {"west": 4, "south": 51, "east": 4.1, "north": 51.1},
                                "temporal_extent": ["2023-05-01", "2023-06-01"]}}}
    assert _messages(validator, call) == []


def test_missing_udp_parameter_names_node(validator: GraphValidator) -> None:
    call = {"tile7": {"process_id": "max_ndvi", "namespace": MAX_NDVI_URL, "result": True,
                      "arguments": {"bbox": {"west": 4, "south": 51, "east": 4.1, "north": 51.1}}}}
    [(code, message)] = _messages(validator, call)
    assert code == "ProcessParameterRequired"
    assert "'tile7'" in message and "'temporal_extent'" in message


def test_unknown_process_and_collection(validator: GraphValidator) -> None:
    graph = {
        "load": {"process_id": "load_collection", "arguments": {
            "id": "NOPE", "spatial_extent": None, "temporal_extent": None}},
        "magic": {"process_id": "magic_wand", "arguments": {"data": {"from_node": "load"}}, "result": True},
    }
    found = dict(_messages(validator, graph))
    assert "'NOPE'" in found["CollectionNotFound"] and "'load'" in found["CollectionNotFound"]
    assert "'magic_wand'" in found["ProcessUnsupported"] and "'magic'" in found["ProcessUnsupported"]


def test_unknown_namespace(validator: GraphValidator) -> None:
    graph = {"x": {"process_id": "gone", "namespace": "https://example.invalid/udp/gone.json",
                   "arguments": {}, "result": True}}
    [(code, message)] = _messages(validator, graph)
    assert code == "ProcessUnsupported" and "'x'" in message and "gone.json" in message


def test_structure_errors(validator: GraphValidator) -> None:
    graph = {
        "a": {"process_id": "absolute", "arguments": {"x": {"from_node": "missing"}}},
        "b": {"process_id": "absolute", "arguments": {"x": 1, "bogus": 2}},
    }
    codes = {code for code, _ in _messages(validator, graph)}
    assert codes == {"ProcessGraphInvalid", "ProcessParameterUnsupported"}
    assert [p.code for p in validator.errors({}, _no_user_processes)] == ["ProcessGraphMissing"]


def test_errors_inside_callbacks_name_the_callback(validator: GraphValidator) -> None:
    graph = {"load": {"process_id": "load_collection", "arguments": {
        "id": "SENTINEL2_L2A", "spatial_extent": None, "temporal_extent": None}},
        "r": {"process_id": "reduce_dimension", "result": True, "arguments": {
            "data": {"from_node": "load"}, "dimension": "t",
            "reducer": {"process_graph": {"m": {"process_id": "maxx", "arguments": {}, "result": True}}}}}}
    [(code, message)] = _messages(validator, graph)
    assert code == "ProcessUnsupported"
    assert "callback 'reducer' of node 'r'" in message
