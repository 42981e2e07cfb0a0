"""The pack's layout holds: no import cycles between its modules (type-only imports included),
`client/` stands alone, and the job lifecycle (`jobs/`) never reaches into request building."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("client", "jobs", "kontext", "nodes", "cli", "standin", "bench")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Modules of the pack `path` imports (relative or absolute, at any depth of the file)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(filter(None, [*base, node.module or ""]))
            elif node.module and node.module.startswith("fal_kontext."):
                target = node.module.removeprefix("fal_kontext.")
            elif node.module and node.module.split(".")[0] in PACKAGES:
                target = node.module
            else:
                continue
            names = [f"{target}.{alias.name}" for alias in node.names]
            found.update(n for n in names if (ROOT / (n.replace(".", "/") + ".py")).exists())
            found.add(target)
    return {module for module in found if module in MODULES and module != name}


MODULES = {module_name(path): path for package in PACKAGES
           for path in (ROOT / package).rglob("*.py")}
GRAPH = {module: imports_of(path) for module, path in MODULES.items()}


def test_no_module_imports_itself_back_through_others():
    cycles = []
    for start in GRAPH:
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, trail = stack.pop()
            for imported in GRAPH[module]:
                if imported == start and imported not in (p.rpartition(".")[0] for p in trail):
                    cycles.append(" -> ".join([*trail, start]))
                elif imported not in seen:
                    seen.add(imported)
                    stack.append((imported, [*trail, imported]))
    package_inits = {m for m in GRAPH if "." not in m}
    real = [c for c in cycles if not set(c.split(" -> ")) & package_inits]
    assert not real, "import cycles:\n" + "\n".join(sorted(set(real)))


def test_the_client_imports_nothing_else_of_the_pack():
    for module, imported in GRAPH.items():
        if module.startswith("client"):
            assert all(m.startswith("client") for m in imported), (module, imported)


def test_the_job_lifecycle_does_not_depend_on_request_building_or_comfyui():
    for module, imported in GRAPH.items():
        if module.startswith("jobs"):
            assert all(m.startswith(("jobs", "client")) for m in imported), (module, imported)
