"""Static checks of a process graph before it is accepted: process ids, namespaces,
collections, required and unknown arguments, node references (missing nodes, cycles),
parameter references and UDP parameters, and exactly one result node per graph.

Every problem names the node id, so a user can find it in a graph of hundreds of nodes.

Parameters follow the evaluator's scoping (`engine.evaluator`): a graph may read the
parameters its process declares; a callback also those its process gives it (``x`` and
``context`` for `apply`...) and, lexically, those of the graph it is written in; a UDP body
only its own. ``context`` is always allowed (it resolves to null where nobody defines it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from openeo_upscale.backend import errors as e
from openeo_upscale.backend.collections import COLLECTIONS
from openeo_upscale.backend.processes import callback_parameters, signatures
from openeo_upscale.backend.udp import UdpResolver

UserProcessLookup = Callable[[str], dict[str, Any] | None]
"""Finds a user's stored process graph by id (namespace `user`)."""
NamespaceLookup = Callable[[str, str], dict[str, Any]]
"""Resolves (namespace, process id) to a UDP document; raises an `ApiError` when it cannot."""

_MAX_DEPTH = 16
"""Levels of callbacks and UDP calls one inside the other."""
Scope = frozenset[str] | None
"""The parameter names a graph may read; None where they are not known (not checked)."""


class GraphValidator:
    """Validates process graphs against the process catalogue, collections and UDPs."""

    def __init__(self, resolver: UdpResolver, *, only: frozenset[str] | None = None) -> None:
        """``only``: the predefined processes accepted (all of the catalogue when None)."""
        self._resolver = resolver
        self._signatures = {pid: sig for pid, sig in signatures().items() if only is None or pid in only}
        # Only the engine (``only`` given: real mode) runs UDFs, so only it judges their runtime; in
        # simulated mode, as for every process, what the catalogue allows is accepted.
        self._engine_udfs = only is not None

    def errors(self, process: Mapping[str, Any], user_processes: UserProcessLookup,
               namespaces: NamespaceLookup | None = None) -> list[e.ApiError]:
        """Every problem found in `process` (a `{"process_graph": ...}` object); `namespaces`
        resolves UDPs by namespace (the resolver's `resolve` when None)."""
        found: list[e.ApiError] = []
        graph = process.get("process_graph") if isinstance(process, Mapping) else None
        if not isinstance(graph, Mapping) or not graph:
            return [e.ProcessGraphMissing("Invalid process specified. It doesn't contain a process graph.")]
        walk = _Walk(namespaces or self._resolver.resolve, self._signatures, user_processes, found,
                     engine_udfs=self._engine_udfs)
        walk.graph(graph, depth=0, where="", scope=_declared(process))
        return found

    def check(self, process: Mapping[str, Any], user_processes: UserProcessLookup,
              namespaces: NamespaceLookup | None = None) -> None:
        """Raise the first problem found in `process`."""
        found = self.errors(process, user_processes, namespaces)
        if found:
            raise found[0]


def _declared(process: Mapping[str, Any]) -> frozenset[str]:
    """The names of the parameters a process (a UDP, or a job's process) declares."""
    params = process.get("parameters")
    if not isinstance(params, list):
        return frozenset()
    return frozenset(str(p["name"]) for p in params if isinstance(p, Mapping) and "name" in p)


def _cycle(edges: Mapping[str, list[str]]) -> list[str] | None:
    """A cycle of `from_node` references (``[a, b, a]``), or None. Iterative: graphs can be big."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if start in state:
            continue
        path, stack = [start], [iter(edges[start])]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state[path.pop()] = 2
                continue
            mark = state.get(nxt)
            if mark == 1:
                return [*path[path.index(nxt):], nxt]
            if mark == 2 or nxt not in edges:
                continue
            state[nxt] = 1
            path.append(nxt)
            stack.append(iter(edges[nxt]))
    return None


class _Walk:
    """One validation pass: the graph walk, with the caller's UDP lookup and the problems found."""

    def __init__(
        self,
        namespaces: NamespaceLookup,
        signatures: dict[str, list[tuple[str, bool]]],
        lookup: UserProcessLookup,
        found: list[e.ApiError],
        *,
        engine_udfs: bool = False,
    ) -> None:
        self.namespaces = namespaces
        self.signatures = signatures
        self.lookup = lookup
        self.found = found
        self.engine_udfs = engine_udfs

    def graph(self, graph: Mapping[str, Any], depth: int, where: str, scope: Scope) -> None:
        if depth > _MAX_DEPTH:
            self.found.append(
                e.ProcessGraphInvalid(f"Process graph nested deeper than {_MAX_DEPTH} levels{where}.")
            )
            return
        results = [str(nid) for nid, node in graph.items()
                   if isinstance(node, Mapping) and node.get("result")]
        if not results:
            self.found.append(e.ProcessGraphInvalid(f"Process graph{where} has no result node."))
        elif len(results) > 1:
            self.found.append(e.ProcessGraphInvalid(
                f"Process graph{where} must have one result node, found {len(results)}: "
                + ", ".join(f"'{nid}'" for nid in results[:5]) + "."))
        edges: dict[str, list[str]] = {}
        for node_id, node in graph.items():
            if not isinstance(node, Mapping) or not isinstance(node.get("process_id"), str):
                self.found.append(e.ProcessGraphInvalid(f"Node '{node_id}'{where} has no process_id."))
                continue
            edges[str(node_id)] = self._node(str(node_id), node, graph, depth, where, scope)
        cycle = _cycle(edges)
        if cycle:
            self.found.append(e.ProcessGraphInvalid(
                f"Process graph{where} has a cycle: " + " -> ".join(f"'{nid}'" for nid in cycle) + "."))

    def _node(
        self,
        node_id: str,
        node: Mapping[str, Any],
        graph: Mapping[str, Any],
        depth: int,
        where: str,
        scope: Scope,
    ) -> list[str]:
        """Checks one node; returns the nodes it reads (``from_node``)."""
        pid: str = node["process_id"]
        namespace = node.get("namespace")
        args = node.get("arguments") or {}
        if not isinstance(args, Mapping):
            self.found.append(
                e.ProcessGraphInvalid(f"Node '{node_id}' ({pid}){where}: arguments must be an object.")
            )
            return []
        reads = self._references(node_id, pid, args, graph, where, scope)

        if namespace in (None, "backend") and pid in self.signatures:
            self._predefined(node_id, pid, args, where)
        elif namespace in (None, "user"):
            udp = self.lookup(pid)
            if udp is None:
                self.found.append(
                    e.ProcessUnsupported(
                        f"Node '{node_id}'{where}: process '{pid}' is not available"
                        + (f" in namespace '{namespace}'." if namespace else ".")
                    )
                )
                return reads
            self._udp_call(node_id, pid, udp, args, depth, where)
        elif namespace == "backend":
            self.found.append(
                e.ProcessUnsupported(
                    f"Node '{node_id}'{where}: process '{pid}' is not available in namespace 'backend'."
                )
            )
        else:
            try:
                udp = self.namespaces(str(namespace), pid)
            except e.ApiError as exc:
                self.found.append(e.ProcessUnsupported(f"Node '{node_id}'{where}: {exc.message}"))
                return reads
            self._udp_call(node_id, pid, udp, args, depth, where)

        predefined = namespace in (None, "backend") and pid in self.signatures
        for arg_name, value in args.items():
            candidates = [(arg_name, value)]
            if pid == "load_collection" and arg_name == "properties" and isinstance(value, Mapping):
                candidates = [(f"properties.{k}", v) for k, v in value.items()]
            for label, cb in candidates:
                if isinstance(cb, Mapping) and isinstance(cb.get("process_graph"), Mapping):
                    inner = f" in callback '{label}' of node '{node_id}'{where}"
                    given = callback_parameters(pid, label.partition(".")[0])
                    # Lexical scoping: the callback's own parameters and those around it. A callback
                    # of a UDP's parameter gets parameters nobody declares here: not checked.
                    known = scope is not None and predefined and given is not None
                    inner_scope = scope | set(given or ()) if known and scope is not None else None
                    self.graph(cb["process_graph"], depth + 1, inner, inner_scope)
        return reads

    def _predefined(self, node_id: str, pid: str, args: Mapping[str, Any], where: str) -> None:
        params = self.signatures[pid]
        names = {n for n, _ in params}
        for name, optional in params:
            if not optional and name not in args:
                self.found.append(
                    e.ProcessParameterRequired(
                        f"Node '{node_id}'{where}: process '{pid}' parameter '{name}' is required."
                    )
                )
        for name in args:
            if name not in names:
                self.found.append(
                    e.ProcessParameterUnsupported(
                        f"Node '{node_id}'{where}: process '{pid}' does not support parameter '{name}'."
                    )
                )
            elif pid == "load_collection" and name == "properties":
                value = args[name]
                if value is not None and not isinstance(value, Mapping):
                    self.found.append(
                        e.ProcessParameterInvalid(
                            f"Node '{node_id}'{where}: parameter 'properties' of process "
                            "'load_collection' must map property names to child process graphs."
                        )
                    )
            elif callback_parameters(pid, name) is not None:
                value = args[name]
                ok = value is None or (
                    isinstance(value, Mapping) and ("process_graph" in value or "from_parameter" in value)
                )
                if not ok:
                    self.found.append(
                        e.ProcessParameterInvalid(
                            f"Node '{node_id}'{where}: parameter '{name}' of process '{pid}' "
                            "must be a child process graph."
                        )
                    )
        if pid == "load_collection":
            cid = args.get("id")
            if isinstance(cid, str) and cid not in COLLECTIONS:
                self.found.append(
                    e.ApiError(
                        f"Node '{node_id}'{where}: collection '{cid}' does not exist.",
                        status=400,
                        code="CollectionNotFound",
                    )
                )
        if pid == "run_udf" and self.engine_udfs:
            from openeo_upscale.backend.engine.udf import udf_problem  # real mode: the engine is loaded

            problem = udf_problem(args.get("udf"), args.get("runtime"), args.get("version"))
            if problem:
                self.found.append(e.ProcessParameterInvalid(f"Node '{node_id}'{where}: run_udf: {problem}."))

    def _udp_call(
        self,
        node_id: str,
        pid: str,
        udp: Mapping[str, Any],
        args: Mapping[str, Any],
        depth: int,
        where: str,
    ) -> None:
        declared = udp.get("parameters") or []
        known = {p.get("name") for p in declared if isinstance(p, Mapping)}
        for param in declared:
            if not isinstance(param, Mapping):
                continue
            name = param.get("name")
            required = not param.get("optional", False) and "default" not in param
            if required and name not in args:
                self.found.append(
                    e.ProcessParameterRequired(
                        f"Node '{node_id}'{where}: process '{pid}' parameter '{name}' is required."
                    )
                )
        for name in args:
            if name not in known:
                self.found.append(
                    e.ProcessParameterUnsupported(
                        f"Node '{node_id}'{where}: process '{pid}' does not support parameter '{name}'."
                    )
                )
        graph = udp.get("process_graph")
        if isinstance(graph, Mapping):
            self.graph(graph, depth + 1, f" in process '{pid}' called by node '{node_id}'{where}",
                       _declared(udp))

    def _references(self, node_id: str, pid: str, args: Any, graph: Mapping[str, Any], where: str,
                    scope: Scope) -> list[str]:
        """Checks the node and parameter references of a node's arguments; returns the nodes read."""
        reads: list[str] = []
        stack = [args]
        while stack:
            value = stack.pop()
            if isinstance(value, Mapping):
                if "process_graph" in value:
                    continue  # a callback has its own scope, checked on its own
                ref = value.get("from_node")
                if isinstance(ref, str) and len(value) == 1:
                    if ref in graph:
                        reads.append(ref)
                    else:
                        self.found.append(
                            e.ProcessGraphInvalid(
                                f"Node '{node_id}' ({pid}){where} refers to node '{ref}', "
                                "which does not exist."
                            )
                        )
                name = value.get("from_parameter")
                if isinstance(name, str) and len(value) == 1 and scope is not None \
                        and name not in scope and name != "context":
                    known = ", ".join(f"'{n}'" for n in sorted(scope)) or "none"
                    self.found.append(
                        e.ProcessGraphInvalid(
                            f"Node '{node_id}' ({pid}){where} refers to parameter '{name}', which is not "
                            f"defined here (defined: {known})."
                        )
                    )
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
        return reads
