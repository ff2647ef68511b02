"""Evaluate an openEO process graph: references, scopes, callbacks, UDP calls and errors.

**Graphs and scopes.** A process graph is a dict of nodes ``{process_id, arguments,
namespace?, result?}``. Each node of a graph is evaluated once per evaluation of that graph,
in dependency order; a value is dropped as soon as its last consumer has run. ``from_node``
refers to a node of the same graph; ``from_parameter`` to a parameter of the innermost scope
that defines it, falling back to the enclosing scopes (openEO's lexical scoping: a callback
may use the parameters of the callback or UDP it is written in). A UDP body is a new scope
that sees only its own parameters. ``context`` resolves to null when no scope defines it.

**Callbacks.** A callback argument (``{"process_graph": {...}}``) reaches the process
implementation as a :class:`Callback`. Calling ``callback(**params)`` evaluates its graph
*afresh*: nothing is cached across calls, so a callback called with different parameters
gives different results.

**How a cube process calls callbacks.** Data cubes are ``xarray.DataArray``. Callbacks are
vectorised: call the callback once with whole arrays, not once per pixel.

- ``apply``: ``process(x=cube, context=context)``; elementwise processes broadcast.
- ``reduce_dimension`` / ``aggregate_temporal_period`` (per group) / ``apply_dimension`` /
  ``apply_neighborhood`` along one dimension: rename the processed dimension to
  :data:`.context.ARRAY_DIM` (keeping its labels as the coordinate) and call
  ``reducer(data=cube.rename({dim: ARRAY_DIM}), context=context)``. Array processes
  (``array_element``, ``max``, ``first``, ``array_apply``...) work along ``ARRAY_DIM``: a
  reducer's result no longer has it; for ``apply_dimension`` it still has it (rename it back;
  when it lacks it, the process returned one value per pixel: the dimension keeps one label,
  0, as the spec has it when the number of values changes). ``array_apply``
  gives its own callback ``x`` (the whole array), ``index`` and ``label`` (1-D DataArrays
  along ``ARRAY_DIM``). Use :func:`.context.to_array_dim` / :func:`.context.from_array_dim`.
- A callback may return a scalar (for example ``0``); broadcast it against the input.

**Errors.** Every failure is a :class:`ProcessGraphError` naming the failing node and its
process, nested from the outermost node inward, for example ``node 'reduce1'
(reduce_dimension) > callback node 'div1' (divide): ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import xarray as xr

from openeo_upscale.backend.engine._common import null_to_nan, truthy
from openeo_upscale.backend.engine.context import Args, EvalContext, ProcessArgumentError, Scope
from openeo_upscale.backend.engine.registry import ProcessRegistry
from openeo_upscale.backend.errors import ApiError

__all__ = ["Callback", "Evaluator", "ProcessGraphError", "UdpLookup"]

MAX_UDP_DEPTH = 32
"""How deeply UDPs may call UDPs before the evaluator assumes a recursion and stops."""

_TOP, _CALLBACK, _UDP = "node", "callback node", "udp node"
_MISSING = object()


class UdpLookup(Protocol):
    """Finds a user-defined process: ``(process_id, namespace) -> {parameters, process_graph}``."""

    def __call__(self, process_id: str, namespace: str | None, /) -> Mapping[str, Any] | None: ...


class ProcessGraphError(ApiError):
    """A process graph that cannot be evaluated, naming the failing node and its process.

    ``node_id`` and ``process_id`` are those of the innermost failing node; ``path`` lists
    ``(kind, node_id, process_id)`` from the outermost node inward (kind is ``"node"``,
    ``"callback node"`` or ``"udp node"``); ``reason`` is the message without the path.
    """

    status = 400
    code = "ProcessGraphInvalid"

    def __init__(
        self,
        node_id: str,
        process_id: str,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        kind: str = _TOP,
        path: tuple[tuple[str, str, str], ...] | None = None,
    ) -> None:
        self.node_id = node_id
        self.process_id = process_id
        self.reason = message
        self.path = path if path is not None else ((kind, node_id, process_id),)
        where = " > ".join(f"{k} '{n}' ({p})" for k, n, p in self.path)
        super().__init__(f"{where}: {message}", code=code, status=status)

    def within(self, kind: str, node_id: str, process_id: str) -> ProcessGraphError:
        """This error as seen from the enclosing node `node_id`."""
        return ProcessGraphError(
            self.node_id,
            self.process_id,
            self.reason,
            code=self.code,
            status=self.status,
            path=((kind, node_id, process_id), *self.path),
        )


class Callback:
    """A child process graph bound to the scope it was written in; call it to evaluate it."""

    def __init__(self, evaluator: Evaluator, process_graph: Mapping[str, Any], scope: Scope) -> None:
        self.evaluator = evaluator
        self.process_graph = process_graph
        self.scope = scope

    def __call__(self, **params: Any) -> Any:
        """Evaluate the child graph afresh with these parameters; returns its result node's value."""
        return self.evaluator._run_graph(self.process_graph, Scope(params, self.scope), _CALLBACK)

    def __repr__(self) -> str:
        return f"Callback({sorted(self.process_graph)})"


@dataclass
class _Plan:
    order: list[str]
    result: str
    deps: dict[str, set[str]]
    consumers: dict[str, int]
    lazy: frozenset[str] = frozenset()
    """Nodes needed only through the ``accept``/``reject`` of ``if`` nodes: run on demand."""
    branches: dict[str, dict[str, set[str]]] | None = None
    """``if`` node -> ``value``/``accept``/``reject`` -> the nodes that argument refers to."""


class Evaluator:
    """Evaluates process graphs with the processes of `registry`.

    `udp_lookup` finds processes the registry does not have (user-defined processes, by
    namespace); `services` is handed to every process through its context.
    """

    def __init__(
        self,
        registry: ProcessRegistry | None = None,
        *,
        udp_lookup: UdpLookup | Callable[[str, str | None], Mapping[str, Any] | None] | None = None,
        services: Mapping[str, Any] | None = None,
    ) -> None:
        if registry is None:
            from openeo_upscale.backend.engine import default_registry

            registry = default_registry()
        self.registry = registry
        self.udp_lookup = udp_lookup
        self.services: Mapping[str, Any] = dict(services or {})
        self._plans: dict[int, tuple[Mapping[str, Any], _Plan]] = {}
        self._udp_depth = 0

    # -- public API ------------------------------------------------------------------------

    def evaluate(self, process_graph: Mapping[str, Any], parameters: Mapping[str, Any] | None = None) -> Any:
        """Evaluate a top-level graph (parameters as given) and return its result node's value."""
        return self._run_graph(process_graph, Scope(parameters or {}), _TOP)

    def evaluate_process(self, process: Mapping[str, Any], arguments: Mapping[str, Any] | None = None) -> Any:
        """Evaluate a process definition ``{parameters?, process_graph}`` as a UDP call would.

        Declared parameters missing from `arguments` take their defaults.
        """
        try:
            values = _udp_parameters(process, Args(arguments or {}))
        except ProcessArgumentError as exc:
            raise ProcessGraphError(
                "(top)", str(process.get("id", "process")), exc.message, code="ProcessParameterInvalid"
            ) from exc
        return self._run_graph(_graph_of(process), Scope(values), _TOP)

    def check(self, process_graph: Mapping[str, Any]) -> None:
        """Check structure and that every process is known, without evaluating anything."""
        self._check(process_graph, _TOP, set())

    # -- graph evaluation ------------------------------------------------------------------

    def _plan(self, graph: Mapping[str, Any], kind: str) -> _Plan:
        cached = self._plans.get(id(graph))
        if cached is not None and cached[0] is graph:
            return cached[1]
        plan = _make_plan(graph, kind)
        self._plans[id(graph)] = (graph, plan)
        return plan

    def _run_graph(self, graph: Mapping[str, Any], scope: Scope, kind: str) -> Any:
        plan = self._plan(graph, kind)
        values: dict[str, Any] = {}
        remaining = dict(plan.consumers)

        def run(node_id: str) -> None:
            node = graph[node_id]
            if plan.branches and node_id in plan.branches:
                node = self._chosen_branch(node_id, node, plan.branches[node_id], demand, values, scope)
            values[node_id] = self._run_node(node_id, node, graph, values, scope, kind)
            for dep in plan.deps[node_id]:
                remaining[dep] -= 1
                if remaining[dep] == 0 and dep != plan.result:
                    values.pop(dep, None)

        def demand(node_ids: set[str]) -> None:
            """Run the lazy nodes among `node_ids` (an if's chosen branch), their own needs first."""
            for node_id in sorted(node_ids - values.keys(), key=plan.order.index):
                if node_id in values or node_id not in plan.lazy:
                    continue
                if plan.branches and node_id in plan.branches:
                    demand(plan.branches[node_id]["value"])
                else:
                    demand(plan.deps[node_id])
                run(node_id)

        for node_id in plan.order:
            if node_id not in plan.lazy:
                if plan.branches and node_id in plan.branches:
                    demand(plan.branches[node_id]["value"])
                run(node_id)
        return values[plan.result]

    def _chosen_branch(self, node_id: str, node: Mapping[str, Any], refs: Mapping[str, set[str]],
                       demand: Callable[[set[str]], None], values: Mapping[str, Any],
                       scope: Scope) -> Mapping[str, Any]:
        """An ``if`` node with only the branch it takes: a scalar ``value`` picks one of
        ``accept`` and ``reject`` (the other is not evaluated, as in a conditional expression);
        a per-pixel ``value`` needs both."""
        arguments = node.get("arguments", {})
        try:
            value = self._resolve(arguments.get("value"), values, scope, node_id)
        except ProcessArgumentError:
            value = None
        if isinstance(value, np.ndarray | xr.DataArray):
            demand(refs["accept"] | refs["reject"])
            return node
        taken = "accept" if truthy(null_to_nan(value)) else "reject"
        demand(refs[taken])
        dropped = {k: v for k, v in arguments.items() if k in ("value", taken)}
        return {**node, "arguments": dropped}

    def _run_node(
        self,
        node_id: str,
        node: Mapping[str, Any],
        graph: Mapping[str, Any],
        values: dict[str, Any],
        scope: Scope,
        kind: str,
    ) -> Any:
        process_id: str = node["process_id"]
        namespace = node.get("namespace")
        impl = self._implementation(node_id, process_id, namespace, kind)
        try:
            args = Args(
                {k: self._resolve(v, values, scope, node_id) for k, v in node.get("arguments", {}).items()}
            )
        except ProcessArgumentError as exc:
            raise ProcessGraphError(node_id, process_id, exc.message, kind=kind) from exc
        ctx = EvalContext(self, node_id, process_id, namespace, graph, scope, values)
        try:
            return impl(args, ctx)
        except ProcessGraphError as exc:
            raise exc.within(kind, node_id, process_id) from exc
        except ProcessArgumentError as exc:
            code = "ProcessParameterRequired" if exc.required else "ProcessParameterInvalid"
            raise ProcessGraphError(node_id, process_id, exc.message, kind=kind, code=code) from exc
        except ApiError as exc:
            raise ProcessGraphError(
                node_id, process_id, exc.message, kind=kind, code=exc.code, status=exc.status
            ) from exc
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:
            raise ProcessGraphError(
                node_id, process_id, f"{type(exc).__name__}: {exc}", kind=kind, code="Internal", status=500
            ) from exc

    def _implementation(self, node_id: str, process_id: str, namespace: str | None, kind: str) -> Any:
        if namespace in (None, "backend"):
            impl = self.registry.get(process_id)
            if impl is not None:
                return impl
        definition = None
        if namespace != "backend" and self.udp_lookup is not None:
            try:
                definition = self.udp_lookup(process_id, namespace)
            except ApiError as exc:
                raise ProcessGraphError(
                    node_id, process_id, exc.message, kind=kind, code="ProcessUnsupported"
                ) from exc
        if definition is None:
            where = f" in namespace '{namespace}'" if namespace else ""
            raise ProcessGraphError(
                node_id,
                process_id,
                f"process '{process_id}'{where} is not supported",
                kind=kind,
                code="ProcessUnsupported",
            )

        def call_udp(args: Args, ctx: EvalContext) -> Any:
            return self._call_udp(definition, args)

        return call_udp

    def _call_udp(self, definition: Mapping[str, Any], args: Args) -> Any:
        if self._udp_depth >= MAX_UDP_DEPTH:
            raise ProcessArgumentError(f"UDPs nested more than {MAX_UDP_DEPTH} deep (recursion?)")
        values = _udp_parameters(definition, args)
        self._udp_depth += 1
        try:
            return self._run_graph(_graph_of(definition), Scope(values), _UDP)
        finally:
            self._udp_depth -= 1

    def _resolve(self, value: Any, values: Mapping[str, Any], scope: Scope, node_id: str) -> Any:
        if isinstance(value, dict):
            ref = value.get("from_node")
            if isinstance(ref, str):
                if ref not in values:
                    raise ProcessArgumentError(f"node '{ref}' has no value here")
                return values[ref]
            name = value.get("from_parameter")
            if isinstance(name, str):
                try:
                    return scope.lookup(name)
                except KeyError:
                    known = ", ".join(scope.names()) or "none"
                    raise ProcessArgumentError(
                        f"parameter '{name}' is not defined (defined here: {known})",
                        parameter=name,
                        required=True,
                    ) from None
            if isinstance(value.get("process_graph"), dict):
                return Callback(self, value["process_graph"], scope)
            return {k: self._resolve(v, values, scope, node_id) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v, values, scope, node_id) for v in value]
        return value

    def _check(self, graph: Any, kind: str, seen_udps: set[tuple[str, str | None]]) -> None:
        plan = _make_plan(graph, kind)
        for node_id in plan.order:
            node = graph[node_id]
            process_id, namespace = node["process_id"], node.get("namespace")
            impl = self._implementation(node_id, process_id, namespace, kind)
            try:
                for child in _callbacks(node.get("arguments", {})):
                    self._check(child, _CALLBACK, seen_udps)
                if not (namespace in (None, "backend") and process_id in self.registry):
                    key = (process_id, namespace)
                    if key not in seen_udps and self.udp_lookup is not None:
                        seen_udps.add(key)
                        definition = self.udp_lookup(process_id, namespace)
                        if definition is not None:
                            self._check(_graph_of(definition), _UDP, seen_udps)
            except ProcessGraphError as exc:
                raise exc.within(kind, node_id, process_id) from exc
            del impl


def _graph_of(definition: Mapping[str, Any]) -> Mapping[str, Any]:
    graph = definition.get("process_graph")
    if not isinstance(graph, dict):
        raise ProcessArgumentError("the process definition has no process_graph")
    return graph


def _udp_parameters(definition: Mapping[str, Any], args: Args) -> dict[str, Any]:
    declared = definition.get("parameters")
    if declared is None:
        return dict(args)
    values: dict[str, Any] = {}
    names = set()
    for param in declared:
        name = param["name"]
        names.add(name)
        if name in args:
            values[name] = args[name]
        elif "default" in param:
            values[name] = param["default"]
        elif param.get("optional"):
            values[name] = None
        else:
            raise ProcessArgumentError(f"missing required argument '{name}'", parameter=name, required=True)
    unknown = sorted(set(args) - names)
    if unknown:
        listed = ", ".join(map(repr, unknown))
        raise ProcessArgumentError(f"unknown argument(s) {listed}", parameter=unknown[0])
    return values


def _node_refs(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        if isinstance(value.get("from_node"), str):
            out.add(value["from_node"])
        elif not isinstance(value.get("process_graph"), dict):
            for v in value.values():
                _node_refs(v, out)
    elif isinstance(value, list):
        for v in value:
            _node_refs(v, out)


def _callbacks(value: Any) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    if isinstance(value, dict):
        if isinstance(value.get("process_graph"), dict):
            found.append(value["process_graph"])
        else:
            for v in value.values():
                found.extend(_callbacks(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(_callbacks(v))
    return found


def _make_plan(graph: Any, kind: str) -> _Plan:
    def invalid(node_id: str, process_id: str, message: str) -> ProcessGraphError:
        return ProcessGraphError(node_id, process_id, message, kind=kind)

    if not isinstance(graph, dict) or not graph:
        raise invalid("(graph)", "-", "a process graph must be a non-empty object of nodes")
    deps: dict[str, set[str]] = {}
    results = []
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("process_id"), str):
            raise invalid(str(node_id), "?", "a node must be an object with a string 'process_id'")
        arguments = node.get("arguments", {})
        if not isinstance(arguments, dict):
            raise invalid(node_id, node["process_id"], "'arguments' must be an object")
        refs: set[str] = set()
        _node_refs(arguments, refs)
        for ref in refs:
            if ref not in graph:
                raise invalid(node_id, node["process_id"], f"refers to node '{ref}', which does not exist")
        deps[node_id] = refs
        if node.get("result"):
            results.append(node_id)
    if len(results) != 1:
        first = next(iter(graph))
        message = f"a process graph needs exactly one result node, found {len(results)}"
        raise invalid(first, graph[first]["process_id"], message)
    # Kahn's algorithm, keeping the document order among ready nodes.
    pending = {n: len(d) for n, d in deps.items()}
    users: dict[str, list[str]] = {n: [] for n in graph}
    for n, d in deps.items():
        for ref in d:
            users[ref].append(n)
    ready = [n for n in graph if pending[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for user in users[n]:
            pending[user] -= 1
            if pending[user] == 0:
                ready.append(user)
    if len(order) != len(graph):
        stuck = next(n for n in graph if n not in set(order))
        raise invalid(stuck, graph[stuck]["process_id"], "the graph has a cycle through this node")
    consumers = {n: len(users[n]) for n in graph}
    branches: dict[str, dict[str, set[str]]] = {}
    for node_id, node in graph.items():
        if node["process_id"] == "if" and node.get("namespace") in (None, "backend"):
            arguments = node.get("arguments", {})
            branches[node_id] = {}
            for name in ("value", "accept", "reject"):
                refs = set()
                _node_refs(arguments.get(name), refs)
                branches[node_id][name] = refs
    lazy = _lazy_nodes(graph, deps, users, branches) if branches else frozenset()
    return _Plan(order=order, result=results[0], deps=deps, consumers=consumers, lazy=lazy,
                 branches=branches or None)


def _lazy_nodes(graph: Mapping[str, Any], deps: Mapping[str, set[str]], users: Mapping[str, list[str]],
                branches: Mapping[str, Mapping[str, set[str]]]) -> frozenset[str]:
    """The nodes every path of which to a node nobody uses passes through an ``if``'s branch."""
    eager: set[str] = set()
    stack = [n for n in graph if not users[n]]
    while stack:
        node_id = stack.pop()
        if node_id in eager:
            continue
        eager.add(node_id)
        stack.extend(branches[node_id]["value"] if node_id in branches else deps[node_id])
    return frozenset(set(graph) - eager)
