"""The shape of lib/: subpackages that say what they hold, and an import graph without circles.

The graph counts every `import` in lib/, also those inside functions: a lazy import that
only hides a circle is still a circle in the design.
"""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from tests.helpers import ROOT

LIB = ROOT / "lib"
# lib's layers, lowest first: a module imports from its own layer or a lower one, never a higher one
LAYERS = ("core", "competition", "models", "data", "matching", "inference", "scan", "training", "evaluation",
          "tools")
CORE = {"__init__", "cli", "device", "draw", "errors", "fileio", "flags", "imageio", "integrity", "options", "paths",
        "progress"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The lib modules that `path` imports (a name imported from a package counts as the
    package's module when it is one, else as the package)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(LIB.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, modules) for path in paths}


def test_lib_imports_have_no_circles():
    graph = import_graph()
    assert len(graph) > 40 and graph["lib.cli"] >= {"lib.errors"}   # the graph sees relative imports
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"lib imports go in a circle: {' -> '.join(exc.args[1])}") from None
    assert set(order) == set(graph)


def layer(module: str) -> str:
    parts = module.split(".")
    return "core" if len(parts) == 1 or parts[1] in CORE else parts[1]


def test_lib_layers_import_downwards_only():
    upward = [f"{module} ({layer(module)}) imports {target} ({layer(target)})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if LAYERS.index(layer(target)) > LAYERS.index(layer(module))]
    assert not upward, "\n".join(upward)


def test_every_subpackage_says_what_it_holds():
    """A grouping package's __init__ imports nothing, so that importing one of its modules
    stays as cheap as the module; a package that is one component (matching, demo) may
    import, to name its public API in `__all__`."""
    packages = [path for path in LIB.rglob("__init__.py") if "__pycache__" not in path.parts]
    assert len(packages) >= 8
    for path in packages:
        tree = ast.parse(path.read_text())
        docstring = ast.get_docstring(tree)
        assert docstring and len(docstring.split()) >= 12, f"{path}: no paragraph saying what it holds"
        imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        names = {target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets
                 if isinstance(target, ast.Name)}
        assert not imports or "__all__" in names, f"{path}: imports modules but names no public API (__all__)"


def test_no_module_sits_loose_in_lib_but_the_shared_core():
    loose = {path.stem for path in LIB.glob("*.py")}
    assert loose == CORE, f"modules outside a subpackage: {sorted(loose - CORE)}"
    assert {path.name for path in LIB.iterdir() if (path / "__init__.py").exists()} == set(LAYERS) - {"core"}
