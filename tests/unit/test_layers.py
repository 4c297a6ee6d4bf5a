"""The folders of streams/ are its layers: imports point down only, and the pure rules import
nothing from Faust, Kafka or the layers above them (CONTRIBUTING.md, "The layers")."""

import ast
import sys
from pathlib import Path

STREAMS = Path(__file__).resolve().parents[2] / "streams"
# Top to bottom: a package may import its own modules and those of the packages below it.
# settings and errors are used by every layer.
LAYERS = ("__main__", "cli", "commands", "faust_app", "faust_fixes", "broker", "rules", "settings", "errors")
BESIDE = {"settings", "errors"}
RULES_MAY_IMPORT = {"pydantic", "schemas", "ahocorasick", "numpy"}  # the content gates: C libraries, no I/O


def module_name(path: Path) -> str:
    parts = path.relative_to(STREAMS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(STREAMS.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module ``name`` imports, at the top or inside a function, by its full name (a name
    imported from a package counts as that module when it is one)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level-1 packages
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return found - {name}


def layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__main__"


def own(modules: set[str]) -> set[str]:
    return {m for m in modules if m == "streams" or m.startswith("streams.")}


def test_every_module_is_in_a_layer():
    assert {layer(m) for m in MODULES if m != "streams"} <= set(LAYERS)


def test_imports_point_down_only():
    upward = []
    for name in MODULES:
        if name == "streams":
            continue
        for target in own(imports(name)):
            if target == "streams" or layer(target) in BESIDE:
                continue
            if LAYERS.index(layer(target)) < LAYERS.index(layer(name)):
                upward.append(f"{name} imports {target}")
    assert not upward, "imports that point up a layer: " + "; ".join(upward)


def test_no_import_circle():
    graph = {name: own(imports(name)) & MODULES.keys() for name in MODULES}
    circles, done = [], set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            circles.append(" -> ".join([*trail[trail.index(name):], name]))
            return
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert not circles, "import circles: " + "; ".join(circles)


def test_the_rules_import_no_faust_kafka_or_app():
    allowed = set(sys.stdlib_module_names) | RULES_MAY_IMPORT
    rules = [name for name in MODULES if layer(name) == "rules"]
    assert rules
    offending = []
    for name in rules:
        for target in imports(name):
            top = target.split(".")[0]
            if top == "streams" and layer(target) in {"rules", *BESIDE}:
                continue
            if top == "streams" or top not in allowed:
                offending.append(f"{name} imports {target}")
    assert not offending, "the pure rules must import nothing from Faust, Kafka or the app: " + "; ".join(offending)
