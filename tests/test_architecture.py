"""The package's layers only import downwards: the import graph of ``xslicq``, read from the
source with :mod:`ast` (module-level and function-level imports of ``xslicq.*``, relative ones
resolved), has no cycle; and every error class of the package is one of :mod:`xslicq.errors`,
importable where it was defined before."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xslicq"


def modules(root: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package's __init__)}`` of every module under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


def imported(name: str, package: bool, node: ast.AST, known) -> list[str]:
    """The package modules an ``import`` / ``from ... import`` statement in module ``name``
    loads: ``from .x import y`` is ``x.y`` when that is a module, else ``x``."""
    if isinstance(node, ast.Import):
        found = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            here = name.split(".") if package else name.split(".")[:-1]
            here = here[: len(here) - (node.level - 1)]
            base = ".".join(here + ([node.module] if node.module else []))
        found = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = []
    for target in found:
        if target != "xslicq" and not target.startswith("xslicq."):
            continue
        while target not in known:  # xslicq.transform.SliCQT -> xslicq.transform
            target = target.rsplit(".", 1)[0]
        out.append(target)
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """``{module: {module it imports: line}}``, every import statement of the file (in
    functions too, where they only run later but still tie the two modules together)."""
    known = modules(root)
    graph = {}
    for name, (path, package) in known.items():
        edges = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported(name, package, node, known):
                    if target != name:
                        edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def function_imports(root: Path = PACKAGE) -> list[str]:
    """``module:line`` of every import of a package module inside a function or method."""
    known, out = modules(root), []
    for name, (path, package) in known.items():
        for func in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and imported(
                    name, package, node, known
                ):
                    out.append(f"{name}:{node.lineno}")
    return sorted(set(out))


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(component: list[str], graph) -> str:
    """The edges inside one cycle, ``a -> b (line)``, for the failure message."""
    inside = set(component)
    edges = [
        f"{a} -> {b} (line {line})"
        for a in component
        for b, line in sorted(graph[a].items())
        if b in inside
    ]
    return " / ".join(component) + ": " + "; ".join(edges)


# ------------------------------------------------------------------ the graph itself
def test_the_graph_reader_knows_the_answer_on_a_toy_package(tmp_path):
    """Known answer: a package with a cycle a -> b -> c -> a through a relative import, a
    function-level import and an absolute one, beside an acyclic d -> a, finds exactly
    {a, b, c}; the same package without the function-level import has none."""
    pkg = tmp_path / "xslicq"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import thing\n")
    (pkg / "c.py").write_text("import xslicq.a\nthing = 1\n")
    (pkg / "d.py").write_text("from xslicq.a import b\n")
    graph = import_graph(pkg)
    assert graph["xslicq.a"] == {"xslicq.sub.b": 1}
    assert graph["xslicq.sub.b"] == {"xslicq.c": 2}
    assert graph["xslicq.d"] == {"xslicq.a": 1}
    assert cycles(graph) == [["xslicq.a", "xslicq.c", "xslicq.sub.b"]]
    assert function_imports(pkg) == ["xslicq.sub.b:2"]
    (pkg / "sub" / "b.py").write_text("def f():\n    return 1\n")
    assert cycles(import_graph(pkg)) == []


def test_the_package_has_no_import_cycle():
    """Issue 23: system <-> separator, system <-> train, export <-> separator and a circle
    through callbacks and cadenza/pipeline were cycles."""
    graph = import_graph()
    assert "xslicq.system" in graph and "xslicq.cadenza.pipeline" in graph
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(c, graph) for c in found)


def test_the_library_never_imports_an_entry_point():
    """The command lines import the library, never the reverse (``ConfigError`` and
    ``read_checkpoint`` lived in ``train.py``, and the system imported them from there)."""
    entry_points = {
        "xslicq.train",
        "xslicq.evaluate",
        "xslicq.separate",
        "xslicq.oracle",
        "xslicq.export",
        "xslicq.stream",
        "xslicq.quickstart",
        "xslicq.transform_demo",
        "xslicq.cadenza.__main__",
        "xslicq.data.synthetic.__main__",
        "xslicq.console",
    }
    graph = import_graph()
    # export.py is an entry point and the home of onnx_bytes, which the Separator's onnx and
    # tensorrt engines call: the one library use of an entry point module left
    allowed = {("xslicq.separator", "xslicq.export")}
    wrong = [
        f"{a} -> {b}"
        for a, edges in graph.items()
        if a not in entry_points and a != "xslicq.console"
        for b in edges
        if b in entry_points and (a, b) not in allowed
    ]
    assert not wrong, wrong


def test_errors_and_checkpoints_sit_below_the_layers_that_raise_and_read_them():
    graph = import_graph()
    assert set(graph["xslicq.errors"]) == set()  # imports nothing of the package
    assert set(graph["xslicq.cli"]) == {"xslicq.errors"}
    assert "xslicq.train" not in graph["xslicq.checkpoint"]
    for module in ("xslicq.separator", "xslicq.export", "xslicq.train"):
        assert "xslicq.checkpoint" in graph[module], module


# ------------------------------------------------------------------------- errors
ERRORS = {  # the module where each class was defined before xslicq.errors, and its family
    "xslicq.train": {"ConfigError": "ConfigError", "CheckpointError": "ConfigError"},
    "xslicq.config": {"DeviceError": "ConfigError"},
    "xslicq.data.checks": {"DataConfigError": "ConfigError"},
    "xslicq.data.tracks": {"DatasetError": "ConfigError"},
    "xslicq.search": {"InvalidTransform": "ConfigError"},
    "xslicq.sweeper": {"SweepStorageError": "ConfigError"},
    "xslicq.inference": {"ModelFileError": "ConfigError", "SeparationInputError": "AudioError"},
    "xslicq.audio": {"AudioFileError": "AudioError"},
    "xslicq.streamer": {"StreamError": "AudioError"},
    "xslicq.outputs": {"OutputError": "XslicqError"},
    "xslicq.evaluation.bsseval": {"EvaluationError": "EvaluationError"},
    "xslicq.cadenza.errors": {"CadenzaError": "EvaluationError"},
    "xslicq.export": {"ExportError": "XslicqError"},
}


@pytest.mark.parametrize("module", sorted(ERRORS))
def test_every_error_class_is_one_of_xslicq_errors_where_it_was(module):
    import importlib

    from xslicq import errors

    mod = importlib.import_module(module)
    for name, family in ERRORS[module].items():
        cls = getattr(mod, name)
        assert cls is getattr(errors, name), (module, name)
        assert issubclass(cls, getattr(errors, family)), (name, family)
        assert issubclass(cls, errors.XslicqError) and issubclass(cls, ValueError)


def test_error_classes_are_defined_only_in_xslicq_errors():
    """No ``class ...Error(ValueError)`` anywhere else in the package."""
    defined = []
    for name, (path, _) in modules().items():
        if name == "xslicq.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if "ValueError" in bases or any(
                    b.endswith("Error")
                    for b in bases
                    - {
                        "RuntimeError",
                        "FileExistsError",
                    }
                ):
                    defined.append(f"{name}.{node.name}")
    assert not defined, defined


def test_the_command_settings_errors_belong_to_both_families():
    from xslicq import errors

    for cls, family in [
        (errors.EvaluationConfigError, errors.EvaluationError),
        (errors.CadenzaConfigError, errors.CadenzaError),
        (errors.ExportConfigError, errors.ExportError),
        (errors.StreamConfigError, errors.StreamError),
        (errors.OutputRefused, errors.OutputError),
    ]:
        assert issubclass(cls, family) and issubclass(cls, errors.ConfigError), cls
