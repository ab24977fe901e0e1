"""The task graph of a pipeline: order, cycles and renderings (DOT for Graphviz, plain text for terminals).

Functions accept a :class:`PipelineSpec` or a plain mapping ``task -> its dependencies`` (what the loader
has before a spec exists). Every result is deterministic: ties are broken by the order tasks are written in.
Edges point downstream (``a -> b``: ``b`` depends on ``a``), as the work flows.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping, Sequence

from .model import PipelineSpec

Graph = Mapping[str, Sequence[str]]  # task -> the tasks it depends on


def _deps(graph: PipelineSpec | Graph) -> dict[str, tuple[str, ...]]:
    if isinstance(graph, PipelineSpec):
        return {t.name: tuple(t.depends) for t in graph.tasks}
    return {name: tuple(deps) for name, deps in graph.items()}


def _children(deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {name: [] for name in deps}
    for name, ups in deps.items():
        for up in dict.fromkeys(ups):
            if up in children:
                children[up].append(name)
    return children


def topological_order(graph: PipelineSpec | Graph) -> list[str]:
    """Every task after all its dependencies; among ready tasks, the one written first.

    Raises ValueError naming a cycle (a validated spec has none). Unknown dependencies are ignored.
    """
    deps = _deps(graph)
    index = {name: i for i, name in enumerate(deps)}
    children = _children(deps)
    waiting = {name: len({d for d in ups if d in deps}) for name, ups in deps.items()}
    ready = [index[name] for name, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    names, order = list(deps), []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, index[child])
    if len(order) < len(deps):
        cycle = find_cycle(deps)
        raise ValueError(f"dependency cycle: {format_cycle(cycle or [])}")
    return order


def find_cycles(graph: PipelineSpec | Graph) -> list[list[str]]:
    """Cycles found by one depth-first pass (one per back edge), each closed: ``[a, b, c, a]``."""
    deps = _deps(graph)
    index = {name: i for i, name in enumerate(deps)}
    children = _children(deps)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: dict[tuple[str, ...], list[str]] = {}
    for root in deps:
        if root in state:
            continue
        path, stack = [root], [iter(children[root])]
        state[root] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif child not in state:
                state[child] = 1
                path.append(child)
                stack.append(iter(children[child]))
            elif state[child] == 1:
                cycle = _rotate(path[path.index(child) :], index)
                cycles.setdefault(tuple(cycle), [*cycle, cycle[0]])
    return list(cycles.values())


def _rotate(cycle: list[str], index: Mapping[str, int]) -> list[str]:
    start = min(range(len(cycle)), key=lambda i: index[cycle[i]])
    return cycle[start:] + cycle[:start]


def find_cycle(graph: PipelineSpec | Graph) -> list[str] | None:
    """One cycle, closed (``[a, b, c, a]``), starting at the task written first; None if acyclic."""
    cycles = find_cycles(graph)
    return cycles[0] if cycles else None


def format_cycle(cycle: Sequence[str]) -> str:
    return " -> ".join(cycle)


def levels(graph: PipelineSpec | Graph) -> dict[str, int]:
    """1 for tasks without dependencies, else one more than the deepest dependency."""
    deps = _deps(graph)
    level: dict[str, int] = {}
    for name in topological_order(deps):
        level[name] = 1 + max((level[d] for d in deps[name] if d in level), default=0)
    return level


def _quote(text: str) -> str:
    return json.dumps(text)  # a DOT string literal needs the same escapes as JSON


def to_dot(spec: PipelineSpec) -> str:
    """Graphviz DOT (``odin graph DIR | dot -Tsvg``); non-Pod kinds and workers are shown in the label."""
    lines = [f"digraph {_quote(spec.name)} {{", "  rankdir=LR;", "  node [shape=box];"]
    for t in spec.tasks:
        extra = "" if t.resource_type == "Pod" else f"\\n{t.resource_type}"
        extra += f" x{t.num_workers}" if t.num_workers > 1 else ""
        label = json.dumps(t.name)[1:-1] + extra
        lines.append(f'  {_quote(t.name)} [label="{label}"];')
    for t in spec.tasks:
        lines += [f"  {_quote(up)} -> {_quote(t.name)};" for up in t.depends]
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_text(spec: PipelineSpec) -> str:
    """One line per task, level by level: level, name, kind when not a Pod, and what it waits for."""
    level = levels(spec)
    position = {t.name: i for i, t in enumerate(spec.tasks)}
    order = sorted(level, key=lambda name: (level[name], position[name]))  # level by level, as written
    width = max(len(name) for name in order)
    lines = [f"{spec.name}: {len(order)} task(s), {max(level.values())} level(s)"]
    for name in order:
        task = spec.task(name)
        kind = "" if task.resource_type == "Pod" else f" [{task.resource_type}]"
        after = f" <- {', '.join(task.depends)}" if task.depends else ""
        lines.append(f"  {level[name]:>2}  {name:<{width}}{kind}{after}".rstrip())
    return "\n".join(lines) + "\n"
