"""The tree's data flow, held by a test: no import circle, no edge against the documented direction.

ssr_core stages (docs/ARCHITECTURE.md): scene <- language <- model <- inference; evaluation and
data may import those; mapping may import them and data/evaluation; commands import anything and
nothing imports commands. `ssr_core.errors` is a leaf every layer may use. ssr_core imports
neither rclpy nor ssr_ros nor training. Every import counts, also those inside functions:
a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ssr_core", "ssr_ros", "training")

# ssr_core stage -> the stages it may import (besides itself and the leaf `errors`).
ALLOWED = {
    "scene": set(),
    "language": {"scene"},
    "model": {"scene", "language"},
    "inference": {"scene", "language", "model"},
    "data": {"scene", "language", "model", "inference"},
    "evaluation": {"scene", "language", "model", "inference", "data"},
    "mapping": {"scene", "language", "model", "inference", "data", "evaluation"},
    "commands": {"scene", "language", "model", "inference", "data", "evaluation", "mapping"},
}
# the package itself (version string), the error base and the atomic-write helpers (on errors only)
LEAVES = {"ssr_core", "ssr_core.errors", "ssr_core.io"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


MODULES = modules()


def imported(path: Path, name: str) -> Iterator[str]:
    """Every module `path` imports (absolute names; relative imports resolved)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`


def internal_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = {t for t in imported(path, name) if t in MODULES and t != name}
        edges[name] = targets
    return edges


EDGES = internal_edges()


def external_imports(name: str) -> set[str]:
    return {t.split(".")[0] for t in imported(MODULES[name], name)}


def stage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "ssr_core" and len(parts) > 1 else None


def test_the_scan_sees_the_whole_tree() -> None:
    assert {"ssr_core.scene.boxes", "ssr_core.commands.main", "ssr_ros.ssr_node", "training.train"} <= set(MODULES)
    assert "ssr_core.scene.boxes" in EDGES["ssr_core.language.parsers"]


def test_no_import_circle() -> None:
    # Iterative DFS over the module graph; report the first cycle with its path.
    colour: dict[str, int] = {}
    for start in sorted(EDGES):
        if colour.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(EDGES[start])))]
        colour[start] = 1
        path = [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child) == 1:
                cycle = path[path.index(child):] + [child]
                pytest.fail("import circle: " + " -> ".join(cycle))
            elif not colour.get(child):
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(EDGES[child]))))


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("ssr_core")))
def test_ssr_core_imports_follow_the_stage_order(name: str) -> None:
    here = stage(name)
    assert not external_imports(name) & {"rclpy", "ssr_ros", "training", "ssr_msgs"}, f"{name} imports ROS or an outer package"
    if here is None or here not in ALLOWED:
        assert name in LEAVES or here == "errors", f"{name} is not in a documented stage"
        bad = {t for t in EDGES[name] if t not in LEAVES}
    else:
        bad = {
            t for t in EDGES[name]
            if t not in LEAVES and stage(t) != here and stage(t) not in ALLOWED[here]
        }
    assert not bad, f"{name} ({here}) imports against the data flow: {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith("ssr_core.commands")))
def test_nothing_imports_the_command_layer(name: str) -> None:
    commands = {t for t in EDGES[name] if stage(t) == "commands"}
    assert not commands, f"{name} imports the command layer: {sorted(commands)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(("ssr_ros.inputs", "ssr_ros.outputs"))))
def test_ros_inputs_and_outputs_do_not_import_the_nodes(name: str) -> None:
    nodes = {t for t in EDGES[name] if t.startswith("ssr_ros.") and t.count(".") == 1 and t != "ssr_ros.node_params"}
    assert not nodes, f"{name} imports a node module: {sorted(nodes)}"


def test_training_and_ros_use_the_library_not_each_other() -> None:
    for name in MODULES:
        if name.startswith("training"):
            assert not any(t.startswith("ssr_ros") for t in EDGES[name]), name
        if name.startswith("ssr_ros"):
            assert not any(t.startswith("training") for t in EDGES[name]), name
