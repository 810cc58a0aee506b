"""The house's layers, read from the source: ground <- stages <- orchestration <- demo and CLI; no import circles."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "shipit"
GROUND = {"shipit", "shipit.config", "shipit.errors", "shipit.registry", "shipit.device", "shipit.plugins",
          "shipit.conventions", "shipit.models", "shipit.formats"}
STAGES = {"shipit.data", "shipit.train", "shipit.merge", "shipit.quantize", "shipit.bench", "shipit.serve"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every shipit module -> the shipit modules it imports (at the top or inside functions)."""
    mods = {module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in mods.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("shipit")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shipit"):
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                          for a in node.names}
        graph[name] = {m for m in found if m in mods and m != name}
    return graph


def area(module: str) -> str:
    """The package that stands for a module's layer position: shipit.bench for shipit.bench.tasks.qa."""
    top = ".".join(module.split(".")[:2])
    return top if top in GROUND | STAGES | {"shipit.ship", "shipit.demo"} else module


def test_stages_import_only_the_ground_and_themselves():
    bad = [f"{m} imports {d}" for m, deps in imports().items() if area(m) in STAGES
           for d in deps if area(d) not in GROUND and area(d) != area(m)]
    assert bad == []


def test_the_ground_imports_only_the_ground():
    bad = [f"{m} imports {d}" for m, deps in imports().items() if area(m) in GROUND
           for d in deps if area(d) not in GROUND]
    assert bad == []


def test_orchestration_sits_below_the_demo_and_the_cli():
    bad = [f"{m} imports {d}" for m, deps in imports().items() if area(m) == "shipit.ship"
           for d in deps if area(d) not in GROUND | STAGES | {"shipit.ship", "shipit.demo"}]
    # ship/ may take the demo world's data directory as a default, nothing else of the demo
    demo = sorted({d for m, deps in imports().items() if area(m) == "shipit.ship" for d in deps
                   if area(d) == "shipit.demo"} - {"shipit.demo.world", "shipit.demo.base"})
    assert bad == [] and demo == []


def test_no_import_circles_between_modules():
    graph = imports()
    cycles, state = [], {}

    def visit(n, stack):
        state[n] = "open"
        for d in sorted(graph[n]):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    # a package's __init__ importing its own submodules is not a circle of concerns
    cycles = [c for c in cycles if not all(x.startswith(c[0]) or c[0].startswith(x) for x in c)]
    assert cycles == []
