"""No import circles among vaecodec's modules: each module sees only those below it.

Every import counts, wherever it stands: at the top, under ``TYPE_CHECKING``, inside a function
(a lazy import), and a string naming a module exactly (``importlib.import_module``). A package's
own ``__init__`` counts as a module; the implicit import of a module's parent packages does not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vaecodec

PACKAGE = Path(vaecodec.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, by any of the means above."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])])
                for alias in node.names:  # from package import module, or names of a module
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                targets.add(node.value)
        graph[name] = {target for target in targets if target in paths and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "vaecodec.codec" in graph["vaecodec"]  # a module named in a string, imported by importlib
    assert "vaecodec.codec" in graph["vaecodec.pillow_plugin"]  # a lazy import inside a function
    assert "vaecodec.pillow_plugin" in graph["vaecodec"] and "vaecodec" not in graph["vaecodec.codec"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []
