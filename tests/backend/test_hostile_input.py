"""Bad and hostile requests get a 4xx openEO error ``{id, code, message}``, never a 500, and
broken graphs are refused by `/validation` and by ``POST /jobs`` with the node named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.limits import MAX_JSON_DEPTH, MAX_PAGE
from tests.backend.client_helpers import LOAD_SMALL, SMALL_BBOX
from tests.conftest import FAST

BBOX, LOAD = SMALL_BBOX, LOAD_SMALL


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    state = tmp_path_factory.mktemp("hostile")
    with LocalBackend(BackendConfig(state_dir=state, simulation=FAST, max_request_mb=1)) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: LocalBackend) -> requests.Session:
    """A session logged in as the demo user, talking to the API root."""
    session = requests.Session()
    token = session.get(server.api_url + "/credentials/basic", auth=("demo", "demo")).json()["access_token"]
    session.headers["Authorization"] = f"Bearer basic//{token}"
    return session


def _post(api: requests.Session, server: LocalBackend, path: str, body: str | bytes) -> requests.Response:
    return api.post(
        server.api_url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30
    )


def _openeo_error(response: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    doc = response.json()
    assert set(doc) >= {"id", "code", "message"} and doc["message"], doc
    if code:
        assert doc["code"] == code, doc
    return doc


def _job_count(api: requests.Session, server: LocalBackend) -> int:
    return len(api.get(server.api_url + "/jobs", params={"limit": MAX_PAGE}).json()["jobs"])


def _nested(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


# -- bodies ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/jobs", "[" * 100_000 + "]" * 100_000),
        (
            "/validation",
            '{"process_graph": {"x": {"process_id": "add", "result": true, "arguments": '
            '{"y": 1, "x": ' + _nested(5000) + "}}}}",
        ),
        ("/result", '{"process": ' + _nested(MAX_JSON_DEPTH + 1) + "}"),
    ],
)
def test_json_nested_too_deep_is_a_400(
    api: requests.Session, server: LocalBackend, path: str, body: str
) -> None:
    doc = _openeo_error(_post(api, server, path, body), 400, "BadRequest")
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in doc["message"]


def _callbacks(levels: int) -> str:
    """A graph whose apply callbacks nest `levels` deep, as text (too deep for `json.dumps`)."""
    callback = (
        '{"process_graph": {"r": {"process_id": "absolute", "result": true, '
        '"arguments": {"x": {"from_parameter": "x"}}}}}'
    )
    for _ in range(levels):
        callback = (
            '{"process_graph": {"r": {"process_id": "apply", "result": true, '
            '"arguments": {"data": {"from_parameter": "x"}, "process": ' + callback + "}}}}"
        )
    load = json.dumps(LOAD)
    return (
        '{"process_graph": {"load": ' + load + ', "ap": {"process_id": "apply", "result": true, '
        '"arguments": {"data": {"from_node": "load"}, "process": ' + callback + "}}}}"
    )


def test_callbacks_nested_too_deep_are_refused_with_the_nesting_named(
    api: requests.Session, server: LocalBackend
) -> None:
    graph = _callbacks(18)  # within the JSON depth limit, beyond the validator's 16 levels
    errors = _post(api, server, "/validation", graph).json()["errors"]
    assert [e["code"] for e in errors] == ["ProcessGraphInvalid"]
    assert "nested deeper than 16 levels in callback 'process' of node 'r'" in errors[0]["message"]
    before = _job_count(api, server)
    _openeo_error(_post(api, server, "/jobs", '{"process": ' + graph + "}"), 400, "ProcessGraphInvalid")
    _openeo_error(_post(api, server, "/validation", _callbacks(300)), 400, "BadRequest")
    assert _job_count(api, server) == before


def test_a_body_over_the_size_limit_is_a_413(api: requests.Session, server: LocalBackend) -> None:
    big = json.dumps({"process": {"process_graph": {}}, "description": "x" * (2 * 2**20)})
    _openeo_error(_post(api, server, "/jobs", big), 413, "PayloadTooLarge")

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while the body streams
        yield b'{"description": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    _openeo_error(_post(api, server, "/validation", chunked()), 413, "PayloadTooLarge")  # type: ignore[arg-type]
    # The server still answers the next request on a new connection.
    assert api.get(server.api_url + "/").status_code == 200


def _absolute(x: str, extra: str = "") -> str:
    """A job body whose one node computes ``absolute(x)``, `x` and `extra` written as JSON text."""
    graph = '{"a": {"process_id": "absolute", "arguments": {"x": ' + x + '}, "result": true}}'
    return '{"process": {"process_graph": ' + graph + "}" + extra + "}"


@pytest.mark.parametrize(
    "body",
    [
        _absolute("1", ', "budget": Infinity'),
        _absolute("NaN"),
        _absolute("1e400"),
        _absolute("9" * 5000),
        b'\xff\xfe{"process": 1}',
        '{"process": ',
    ],
)
def test_numbers_out_of_range_and_broken_json_are_a_400(
    api: requests.Session, server: LocalBackend, body: str | bytes
) -> None:
    before = _job_count(api, server)
    _openeo_error(_post(api, server, "/jobs", body), 400, "BadRequest")
    assert _job_count(api, server) == before


# -- query parameters and names ----------------------------------------------------------------------------


def _a_job(api: requests.Session, server: LocalBackend) -> str:
    graph = {
        "process_graph": {
            "load": LOAD,
            "save": {
                "process_id": "save_result",
                "result": True,
                "arguments": {"data": {"from_node": "load"}, "format": "GTiff"},
            },
        }
    }
    response = _post(api, server, "/jobs", json.dumps({"process": graph, "title": "hostile"}))
    assert response.status_code == 201, response.text
    return response.headers["OpenEO-Identifier"]


def test_a_limit_above_the_maximum_gets_a_page_of_the_maximum(
    api: requests.Session, server: LocalBackend
) -> None:
    job_id = _a_job(api, server)
    page = api.get(server.api_url + "/jobs", params={"limit": 10_000})
    assert page.status_code == 200 and job_id in [j["id"] for j in page.json()["jobs"]]
    logs = api.get(server.api_url + f"/jobs/{job_id}/logs", params={"limit": "99999999999999999999"})
    assert logs.status_code == 200 and isinstance(logs.json()["logs"], list)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/jobs", {"limit": 0}),
        ("/jobs", {"limit": -5}),
        ("/jobs", {"limit": "ten"}),
        ("/jobs", {"page": -1}),
        ("/jobs", {"page": "1" + "0" * 30}),
        ("/jobs/{job}/logs", {"limit": 0}),
        ("/jobs/{job}/logs", {"offset": "99999999999999999999999"}),
        ("/jobs/{job}/logs", {"offset": "²"}),
        ("/jobs/{job}/results", {"page": 10**12}),
    ],
)
def test_numbers_out_of_range_in_the_query_are_a_400(
    api: requests.Session, server: LocalBackend, path: str, params: dict[str, Any]
) -> None:
    job_id = _a_job(api, server)
    _openeo_error(api.get(server.api_url + path.format(job=job_id), params=params), 400)


@pytest.mark.parametrize("name", ["openEO.tif%00.json", "openEO%0a.tif", "%1b[31m.tif", "a%7f.tif"])
def test_asset_names_with_control_characters_are_a_404(
    api: requests.Session, server: LocalBackend, name: str
) -> None:
    job_id = _a_job(api, server)
    doc = _openeo_error(api.get(server.api_url + f"/jobs/{job_id}/results/assets/{name}"), 404)
    assert doc["code"] in ("FileNotFound", "NotFound")  # a newline does not even match the route
    _openeo_error(api.get(server.api_url + f"/udp/{name.replace('.tif', '')}.json"), 404)


# -- broken graphs -----------------------------------------------------------------------------------------


def _node(pid: str, result: bool = False, **arguments: Any) -> dict[str, Any]:
    return {"process_id": pid, "arguments": arguments, **({"result": True} if result else {})}


BROKEN = {
    "cycle": (
        {"a": _node("absolute", x={"from_node": "b"}), "b": _node("absolute", True, x={"from_node": "a"})},
        "has a cycle: 'a' -> 'b' -> 'a'",
    ),
    "self-reference": ({"a": _node("absolute", True, x={"from_node": "a"})}, "has a cycle: 'a' -> 'a'"),
    "missing node": (
        {"a": _node("absolute", True, x={"from_node": "nowhere"})},
        "Node 'a' (absolute) refers to node 'nowhere', which does not exist",
    ),
    "undefined parameter": (
        {"a": _node("absolute", True, x={"from_parameter": "nope"})},
        "Node 'a' (absolute) refers to parameter 'nope', which is not defined here",
    ),
    "parameter of another callback": (
        {
            "load": LOAD,
            "red": _node(
                "reduce_dimension",
                True,
                data={"from_node": "load"},
                dimension="t",
                reducer={"process_graph": {"m": _node("max", True, data={"from_parameter": "x"})}},
            ),
        },
        "Node 'm' (max) in callback 'reducer' of node 'red' refers to parameter 'x'",
    ),
    "no result node": ({"a": _node("absolute", x=1)}, "has no result node"),
    "two result nodes": (
        {"a": _node("absolute", True, x=1), "b": _node("absolute", True, x=2)},
        "must have one result node, found 2: 'a', 'b'",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_graphs_are_refused_by_validation_and_by_job_creation(
    api: requests.Session, server: LocalBackend, case: str
) -> None:
    graph, message = BROKEN[case]
    errors = _post(api, server, "/validation", json.dumps({"process_graph": graph})).json()["errors"]
    assert any(message in e["message"] for e in errors), errors
    before = _job_count(api, server)
    doc = _openeo_error(_post(api, server, "/jobs", json.dumps({"process": {"process_graph": graph}})), 400)
    assert message in doc["message"]
    assert _job_count(api, server) == before


def test_parameters_in_scope_are_accepted(api: requests.Session, server: LocalBackend, udp_dir: Path) -> None:
    """A callback reads its own parameters and, lexically, those of the UDP it is written in;
    ``context`` is always allowed; the reference UDPs stored as user processes validate cleanly."""
    udp = {
        "id": "scaled",
        "parameters": [
            {"name": "factor", "schema": {"type": "number"}},
            {"name": "bbox", "schema": {"type": "object"}},
        ],
        "process_graph": {
            "load": {
                **LOAD,
                "arguments": {**LOAD["arguments"], "spatial_extent": {"from_parameter": "bbox"}},
            },
            "ap": _node(
                "apply",
                True,
                data={"from_node": "load"},
                context={"from_parameter": "factor"},
                process={
                    "process_graph": {
                        "m": _node(
                            "multiply", True, x={"from_parameter": "x"}, y={"from_parameter": "factor"}
                        )
                    }
                },
            ),
        },
    }
    assert _post(api, server, "/validation", json.dumps(udp)).json()["errors"] == []
    assert api.put(server.api_url + "/process_graphs/scaled", json=udp).status_code == 200
    call = {
        "process_graph": {
            "s": {
                "process_id": "scaled",
                "namespace": "user",
                "result": True,
                "arguments": {"factor": 2, "bbox": BBOX},
            }
        }
    }
    assert _post(api, server, "/validation", json.dumps(call)).json()["errors"] == []
    top = {"process_graph": {"a": _node("absolute", True, x={"from_parameter": "context"})}}
    assert _post(api, server, "/validation", json.dumps(top)).json()["errors"] == []
    for name in ("max_ndvi", "bap_composite"):
        assert (
            _post(api, server, "/validation", (udp_dir / f"{name}.json").read_text()).json()["errors"] == []
        ), name
