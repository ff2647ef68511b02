"""The evaluator: references, lexical scoping, fresh callbacks, UDP calls and node errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from openeo_upscale.backend.engine import (
    Args,
    Callback,
    EvalContext,
    Evaluator,
    ProcessGraphError,
    default_registry,
)
from tests.backend.engine.helpers import node
from tests.backend.engine.helpers import p as param


def ref(node_id: str) -> dict[str, str]:
    return {"from_node": node_id}


def cb(graph: dict[str, Any]) -> dict[str, Any]:
    return {"process_graph": graph}


@pytest.fixture
def calls() -> dict[str, int]:
    return {"count": 0}


@pytest.fixture
def registry(calls: dict[str, int]) -> Any:
    reg = default_registry().copy()

    @reg.register("call_each")
    def call_each(args: Args, ctx: EvalContext) -> Any:
        """Calls its callback once per item of `data`, like a per-pixel cube process would."""
        process = args["process"]
        assert isinstance(process, Callback)
        return [process(x=v, context=args.get("context")) for v in args["data"]]

    @reg.register("counted")
    def counted(args: Args, ctx: EvalContext) -> Any:
        calls["count"] += 1
        return args["x"]

    return reg


def test_references_and_memoised_nodes(registry: Any, calls: dict[str, int]) -> None:
    graph = {
        "a": node("counted", x=3),
        "b": node("add", x=ref("a"), y=ref("a")),
        "c": node("multiply", x=ref("b"), y=[ref("a")][0], result=True),
    }
    assert Evaluator(registry).evaluate(graph) == 18
    assert calls["count"] == 1


def test_references_inside_arrays_and_objects(registry: Any) -> None:
    graph = {
        "a": node("add", x=1, y=2),
        "b": node("constant", x={"list": [ref("a"), param("p")], "n": 1}, result=True),
    }
    assert Evaluator(registry).evaluate(graph, {"p": "v"}) == {"list": [3, "v"], "n": 1}


def test_callback_is_evaluated_afresh_on_every_call(registry: Any, calls: dict[str, int]) -> None:
    graph = {
        "each": node(
            "call_each",
            data=[1, 2, 3, 4],
            process=cb(
                {"c": node("counted", x=param("x")), "m": node("multiply", x=ref("c"), y=10, result=True)}
            ),
            result=True,
        )
    }
    assert Evaluator(registry).evaluate(graph) == [10, 20, 30, 40]
    assert calls["count"] == 4


def test_callback_sees_parameters_of_the_enclosing_udp(registry: Any) -> None:
    udp = {
        "id": "scale_all",
        "parameters": [{"name": "values"}, {"name": "factor", "optional": True, "default": 2}],
        "process_graph": {
            "each": node(
                "call_each",
                data=param("values"),
                process=cb({"m": node("multiply", x=param("x"), y=param("factor"), result=True)}),
                result=True,
            )
        },
    }
    lookup = {("scale_all", "user"): udp}
    ev = Evaluator(registry, udp_lookup=lambda pid, ns: lookup.get((pid, ns)))
    top = {
        "s": {"process_id": "scale_all", "namespace": "user", "arguments": {"values": [1, 2]}, "result": True}
    }
    assert ev.evaluate(top) == [2, 4]
    top["s"]["arguments"]["factor"] = 5
    assert ev.evaluate(top) == [5, 10]


def test_nested_callbacks_see_outer_callback_parameters(registry: Any) -> None:
    inner = cb({"s": node("add", x=param("x"), y=param("outer"), result=True)})
    outer = cb(
        {
            "o": node("constant", x=param("x")),
            "e": node("call_each", data=[100, 200], process=inner, result=True),
        }
    )
    # The inner callback's `x` shadows the outer one; `outer` comes from the top-level scope.
    graph = {"each": node("call_each", data=[1, 2], process=outer, result=True)}
    assert Evaluator(registry).evaluate(graph, {"outer": 7}) == [[107, 207], [107, 207]]

    uses_outer_x = cb(
        {
            "e": node(
                "call_each",
                data=[10],
                process=cb({"s": node("add", x=param("x"), y=param("context"), result=True)}),
                context=param("x"),
                result=True,
            )
        }
    )
    graph = {"each": node("call_each", data=[1, 2], process=uses_outer_x, result=True)}
    assert Evaluator(registry).evaluate(graph) == [[11], [12]]


def test_udp_calling_udp(registry: Any) -> None:
    udps = {
        "double": {
            "parameters": [{"name": "v"}],
            "process_graph": {"m": node("multiply", x=param("v"), y=2, result=True)},
        },
        "quadruple": {
            "parameters": [{"name": "v"}],
            "process_graph": {
                "a": node("double", v=param("v")),
                "b": node("double", v=ref("a"), result=True),
            },
        },
    }
    ev = Evaluator(registry, udp_lookup=lambda pid, ns: udps.get(pid))
    assert ev.evaluate({"q": node("quadruple", v=3, result=True)}) == 12
    ev.check({"q": node("quadruple", v=3, result=True)})


def test_udp_parameters_do_not_leak_into_called_udps(registry: Any) -> None:
    udps = {
        "leaky": {"parameters": [], "process_graph": {"c": node("constant", x=param("secret"), result=True)}},
    }
    ev = Evaluator(registry, udp_lookup=lambda pid, ns: udps.get(pid))
    with pytest.raises(ProcessGraphError, match="parameter 'secret' is not defined"):
        ev.evaluate({"l": node("leaky", result=True)}, {"secret": 1})


def test_udp_missing_required_argument(registry: Any) -> None:
    udps = {
        "need": {"parameters": [{"name": "v"}], "process_graph": {"c": node("constant", x=1, result=True)}}
    }
    ev = Evaluator(registry, udp_lookup=lambda pid, ns: udps.get(pid))
    with pytest.raises(ProcessGraphError, match="node 'n' \\(need\\): missing required argument 'v'") as info:
        ev.evaluate({"n": node("need", result=True)})
    assert info.value.code == "ProcessParameterRequired"


def test_unknown_process_names_the_node(registry: Any) -> None:
    graph = {"a": node("add", x=1, y=2), "frob1": node("frobnicate", x=ref("a"), result=True)}
    ev = Evaluator(registry)
    with pytest.raises(ProcessGraphError, match="node 'frob1' \\(frobnicate\\)") as info:
        ev.evaluate(graph)
    assert info.value.code == "ProcessUnsupported"
    assert info.value.node_id == "frob1"
    with pytest.raises(ProcessGraphError, match="frob1"):
        ev.check(graph)


def test_error_in_callback_is_nested(registry: Any) -> None:
    graph = {
        "each1": node(
            "call_each",
            data=[1, "two"],
            process=cb({"div1": node("divide", x=param("x"), y=2, result=True)}),
            result=True,
        )
    }
    with pytest.raises(ProcessGraphError) as info:
        Evaluator(registry).evaluate(graph)
    err = info.value
    assert str(err).startswith("node 'each1' (call_each) > callback node 'div1' (divide): argument 'x'")
    assert (err.node_id, err.process_id) == ("div1", "divide")
    assert err.code == "ProcessParameterInvalid"
    assert err.to_dict()["message"] == str(err)


def test_wrong_argument_type_names_the_node(registry: Any) -> None:
    with pytest.raises(ProcessGraphError, match="node 'm' \\(max\\): argument 'data' must be an array"):
        Evaluator(registry).evaluate({"m": node("max", data="abc", result=True)})


def test_structural_errors(registry: Any) -> None:
    ev = Evaluator(registry)
    with pytest.raises(ProcessGraphError, match="exactly one result node"):
        ev.evaluate({"a": node("add", x=1, y=2)})
    with pytest.raises(ProcessGraphError, match="node 'a' \\(add\\): refers to node 'zz'"):
        ev.evaluate({"a": node("add", x=ref("zz"), y=2, result=True)})
    with pytest.raises(ProcessGraphError, match="cycle"):
        ev.evaluate({"a": node("add", x=ref("b"), y=1), "b": node("add", x=ref("a"), y=1, result=True)})


def test_undefined_parameter_and_null_context(registry: Any) -> None:
    ev = Evaluator(registry)
    assert ev.evaluate({"c": node("constant", x=param("context"), result=True)}) is None
    with pytest.raises(ProcessGraphError, match="node 'c' \\(constant\\): parameter 'nope' is not defined"):
        ev.evaluate({"c": node("constant", x=param("nope"), result=True)})


def test_evaluate_process_applies_defaults(registry: Any) -> None:
    process = {
        "parameters": [{"name": "a"}, {"name": "b", "optional": True, "default": 10}],
        "process_graph": {"s": node("add", x=param("a"), y=param("b"), result=True)},
    }
    assert Evaluator(registry).evaluate_process(process, {"a": 1}) == 11


def test_long_chain_does_not_recurse(registry: Any) -> None:
    graph = {"n0": node("add", x=0, y=1)}
    for i in range(1, 3000):
        graph[f"n{i}"] = node("add", x=ref(f"n{i - 1}"), y=1)
    graph["n2999"]["result"] = True
    assert Evaluator(registry).evaluate(graph) == 3000


def test_services_reach_processes(registry: Any) -> None:
    @registry.register("service")
    def service(args: Args, ctx: EvalContext) -> Any:
        return ctx.services["answer"]

    assert Evaluator(registry, services={"answer": 42}).evaluate({"s": node("service", result=True)}) == 42


def test_if_with_a_scalar_value_evaluates_only_the_branch_it_takes(registry: Any,
                                                                    calls: dict[str, int]) -> None:
    """As timeseries_statistics writes it: with `period` null, the branch aggregating by period
    (which would fail on a null period) is not evaluated; a chain of ifs stays lazy."""
    graph = {
        "null": node("is_nodata", x=param("period")),
        "by_period": node("aggregate_temporal_period", data=param("cube"), period=param("period"),
                          reducer=cb({"m": node("mean", data=param("data"), result=True)})),
        "whole": node("counted", x=7),
        "inner": node("if", value=ref("null"), accept=ref("whole"), reject=ref("by_period")),
        "outer": node("if", value=False, accept=ref("by_period"), reject=ref("inner"), result=True),
    }
    assert Evaluator(registry).evaluate(graph, {"period": None, "cube": None}) == 7
    assert calls["count"] == 1


def test_if_with_a_per_pixel_value_evaluates_both_branches(registry: Any, calls: dict[str, int]) -> None:
    pixels = xr.DataArray(np.array([1.0, 2.0, 3.0]), dims="x")
    graph = {
        "big": node("gt", x=param("pixels"), y=1.5),
        "doubled": node("multiply", x=param("pixels"), y=2.0),
        "counted": node("counted", x=ref("doubled")),
        "choose": node("if", value=ref("big"), accept=ref("counted"), reject=0.0, result=True),
    }
    result = Evaluator(registry).evaluate(graph, {"pixels": pixels})
    np.testing.assert_array_equal(result.values, [0.0, 4.0, 6.0])
    assert calls["count"] == 1
