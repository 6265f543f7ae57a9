"""Print vgx's import floors: a module's floor is one above the highest vgx module it imports.

Reads imports as text (AST), lazy imports inside functions included, so a cycle hidden by a lazy
import shows up as "cycle". Also lists, per module, the largest number of names it imports from
one sibling module. Run: python scripts/floors.py [PACKAGE_DIR]
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> dict[str, int]:
    """vgx modules imported by `path`, with how many names each import brings in."""
    found: dict[str, int] = defaultdict(int)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                target = sub if sub in modules else node.module
                if target in modules:
                    found[target] += 1
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found[alias.name] += 1
    return found


def main(package: str = "vgx") -> None:
    root = Path(package).resolve()
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph = {m: imports_of(p, set(files)) for m, p in files.items()}
    for m in graph:  # a package's __init__ importing its own submodules is not a dependency up
        graph[m].pop(m, None)
    floors: dict[str, int | str] = {}

    def floor(m: str, stack: tuple[str, ...] = ()) -> int | str:
        if m in floors:
            return floors[m]
        if m in stack:
            return "cycle"
        below = [floor(d, (*stack, m)) for d in graph[m] if not m.startswith(f"{d}.")]
        value: int | str = "cycle" if "cycle" in below else 1 + max([0, *below])  # type: ignore[list-item]
        floors[m] = value
        return value

    for m in graph:
        floor(m)
    by_floor: dict[int | str, list[str]] = defaultdict(list)
    for m, f in floors.items():
        by_floor[f].append(m)
    ordered = sorted(by_floor, key=lambda f: (isinstance(f, int), f), reverse=True)
    for f in ordered:
        print(f"floor {f:>5}: {', '.join(sorted(by_floor[f]))}")
    worst = max(((n, m, d) for m, ds in graph.items() for d, n in ds.items()), default=None)
    if worst:
        print(f"most names from one sibling: {worst[0]} ({worst[1]} <- {worst[2]})")


if __name__ == "__main__":
    main(*sys.argv[1:])
