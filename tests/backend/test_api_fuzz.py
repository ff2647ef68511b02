"""Property test: random bodies and randomly mutated process graphs sent to `/validation`,
``POST /jobs`` and `/result` never get a 500, always an openEO error body when refused, and the
server stays up. Bounded for CI: a few hundred examples in all."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openeo_upscale.backend import BackendConfig, LocalBackend
from tests.backend.client_helpers import LOAD_SMALL, SMALL_BBOX
from tests.conftest import FAST, MAX_NDVI_URL, require_shared

EXAMPLES = 100
"""Examples per test (three tests)."""
ENDPOINTS = ("/validation", "/jobs", "/result")
BBOX = SMALL_BBOX

REDUCE_GRAPH = {
    "process_graph": {
        "load": LOAD_SMALL,
        "red": {
            "process_id": "reduce_dimension",
            "arguments": {
                "data": {"from_node": "load"},
                "dimension": "t",
                "reducer": {
                    "process_graph": {
                        "m": {
                            "process_id": "max",
                            "arguments": {"data": {"from_parameter": "data"}},
                            "result": True,
                        }
                    }
                },
            },
        },
        "save": {
            "process_id": "save_result",
            "arguments": {"data": {"from_node": "red"}, "format": "GTiff"},
            "result": True,
        },
    }
}
UDP_CALL = {
    "process_graph": {
        "n": {
            "process_id": "max_ndvi",
            "namespace": MAX_NDVI_URL,
            "result": True,
            "arguments": {"bbox": BBOX, "temporal_extent": ["2023-05-01", "2023-07-01"]},
        }
    }
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
hostile_strings = st.sampled_from(
    [
        "",
        "result",
        "load",
        "red",
        "save",
        "m",
        "n",
        "data",
        "x",
        "context",
        "/etc/passwd",
        "../../etc/passwd",
        "http://127.0.0.1:1/x.json",
        "user",
        "backend",
        "openEO.tif\x00.json",
        "\x1b[31m",
        "a" * 300,
        "max_ndvi",
    ]
) | st.text(max_size=12)
replacements = (
    json_values
    | st.builds(lambda n: {"from_node": n}, hostile_strings)
    | st.builds(lambda n: {"from_parameter": n}, hostile_strings)
    | st.builds(lambda g: {"process_graph": g}, st.dictionaries(hostile_strings, json_values, max_size=3))
    | hostile_strings
)


def _places(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside `doc` (dict keys and list indexes)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*path, key)
            yield from _places(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield (*path, index)
            yield from _places(value, (*path, index))


@st.composite
def mutated_processes(draw: st.DrawFn) -> dict[str, Any]:
    """A valid process with 1-4 random changes: values replaced, keys dropped or added."""
    doc = copy.deepcopy(draw(st.sampled_from([REDUCE_GRAPH, UDP_CALL])))
    for _ in range(draw(st.integers(1, 4))):
        places = list(_places(doc))
        path = draw(st.sampled_from(places))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(replacements)
        elif action == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(hostile_strings)] = draw(replacements)
        if not isinstance(doc.get("process_graph"), dict) or not doc["process_graph"]:
            break
    return doc


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBackend, requests.Session]]:
    """One backend for every example, with the reference UDPs (max_ndvi by its namespace URL)."""
    config = BackendConfig(
        state_dir=tmp_path_factory.mktemp("fuzz"), udp_dirs=(require_shared("udp"),), simulation=FAST
    )
    with LocalBackend(config) as backend:
        session = requests.Session()
        token = session.get(backend.api_url + "/credentials/basic", auth=("demo", "demo")).json()[
            "access_token"
        ]
        session.headers["Authorization"] = f"Bearer basic//{token}"
        yield backend, session
        assert session.get(backend.api_url + "/").status_code == 200, "the backend went down"


def _check(response: requests.Response, sent: Any) -> None:
    assert response.status_code < 500, f"{response.status_code} {response.text[:300]} for {str(sent)[:500]}"
    if response.status_code >= 400:
        doc = response.json()
        assert isinstance(doc, dict) and doc.get("code") and doc.get("message"), response.text[:300]


def _send(target: tuple[LocalBackend, requests.Session], path: str, body: bytes) -> requests.Response:
    backend, session = target
    return session.post(
        backend.api_url + path, data=body, headers={"Content-Type": "application/json"}, timeout=60
    )


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(process=mutated_processes(), endpoint=st.sampled_from(ENDPOINTS))
def test_mutated_process_graphs_never_get_a_500(
    target: tuple[LocalBackend, requests.Session], process: dict[str, Any], endpoint: str
) -> None:
    body = process if endpoint == "/validation" else {"process": process}
    _check(_send(target, endpoint, json.dumps(body).encode()), body)


@FUZZ
@given(
    extra=st.dictionaries(
        st.sampled_from(["title", "description", "plan", "budget", "log_level", "job_options", "process"]),
        json_values,
        max_size=4,
    ),
    endpoint=st.sampled_from(ENDPOINTS),
)
def test_random_job_fields_never_get_a_500(
    target: tuple[LocalBackend, requests.Session], extra: dict[str, Any], endpoint: str
) -> None:
    body = {"process": copy.deepcopy(REDUCE_GRAPH), **extra}
    _check(_send(target, endpoint, json.dumps(body).encode()), body)


@FUZZ
@given(
    body=st.binary(max_size=300) | st.builds(lambda v: json.dumps(v).encode(), json_values),
    endpoint=st.sampled_from(ENDPOINTS),
)
def test_random_bodies_never_get_a_500(
    target: tuple[LocalBackend, requests.Session], body: bytes, endpoint: str
) -> None:
    _check(_send(target, endpoint, body), body)
