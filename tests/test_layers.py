"""The package's layers, read from every module's imports: arrows point down, no cycles.

Each module of ``chatproto`` belongs to a layer (its subpackage, or one of
the top-level modules); every import it makes, at module level, inside a
function or under ``TYPE_CHECKING``, must point to a layer it may use
(README "Layout", CONTRIBUTING.rst):

- ``limits``: nothing of chatproto;
- ``argtypes`` (command-line value types): nothing of chatproto;
- ``wire``: ``limits`` and the standard library only, never Twisted;
- ``server``: ``wire``, ``limits``, ``argtypes``;
- ``cluster``: ``server``, ``wire``, ``limits``, ``argtypes``; the only layer importing txredisapi;
- ``client``: ``wire``, ``limits``, ``argtypes``; never the server;
- ``web`` (the page's WebSocket): ``server``, ``wire``, ``limits``, ``argtypes``;
- ``root`` (``options``, ``endpoints``, ``serving``, ``tap``, ``cli``, ``__main__``): the server
  assembled, with the cluster and the web layer.

A compiled twin (a Cython ``.pyx``, STYLE §9) is held to its layer too: its
imports and cimports are read line by line (Cython is not Python to ``ast``),
and besides what its layer may import it may cimport only Cython's own
declarations (``cython``, ``libc``, ``cpython``).
"""

import ast
import re
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "chatproto"

MAY_IMPORT: dict[str, set[str]] = {
    "limits": set(),
    "argtypes": set(),
    "wire": {"limits"},
    "server": {"wire", "limits", "argtypes"},
    "cluster": {"server", "wire", "limits", "argtypes"},
    "client": {"wire", "limits", "argtypes"},
    "web": {"server", "wire", "limits", "argtypes"},
    "root": {"server", "cluster", "web", "wire", "limits", "argtypes"},
}


def module_name(path: Path) -> str:
    """``chatproto/server/tcp.py`` -> ``chatproto.server.tcp`` (a package is its ``__init__``)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
#: The compiled twins' sources, by module name (their imports are checked apart).
CYTHON_MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.pyx"))}
#: What a ``.pyx`` may cimport besides chatproto: Cython's own declarations.
CYTHON_DECLARATIONS = frozenset({"cython", "libc", "cpython"})
#: An import or cimport statement of a ``.pyx`` (``from X [c]import ...``,
#: ``[c]import X, Y as Z``), whole lines only, so that prose in a docstring is not one.
_NAME = r"[\w.]+(?:[ \t]+as[ \t]+\w+)?"
CYTHON_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<source>[\w.]+)[ \t]+c?import[ \t]+[\w(*]"
    rf"|c?import[ \t]+(?P<names>{_NAME}(?:[ \t]*,[ \t]*{_NAME})*)[ \t]*(?:#.*)?$)",
    re.M,
)


def layer_of(module: str) -> str:
    """The layer a ``chatproto`` module belongs to."""
    parts = module.split(".")
    if len(parts) == 1:
        return "root"  # the package's own __init__
    if parts[1] in ("wire", "server", "cluster", "client", "web", "limits", "argtypes"):
        return parts[1]
    return "root"


def imports_of(module: str) -> list[tuple[str, int]]:
    """Every module ``module`` imports (absolute names), with the line, wherever it stands."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in MODULES else base, node.lineno))
    return found


def internal_imports(module: str) -> list[tuple[str, int]]:
    """The ``chatproto`` modules ``module`` imports, resolved to modules that exist."""
    resolved = []
    for name, line in imports_of(module):
        if name == "chatproto" or name.startswith("chatproto."):
            while name not in MODULES and "." in name:
                name = name.rpartition(".")[0]  # an attribute of a module
            resolved.append((name, line))
    return resolved


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_only_to_layers_below(module: str) -> None:
    """A module imports only from its own layer and the layers it may use."""
    layer = layer_of(module)
    allowed = MAY_IMPORT[layer] | {layer}
    wrong = [
        f"line {line}: {name} ({layer_of(name)})"
        for name, line in internal_imports(module)
        if name != "chatproto" and layer_of(name) not in allowed
    ]
    assert wrong == [], f"{module} ({layer}) may import only {sorted(allowed)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) in ("wire", "limits")))
def test_wire_and_limits_import_only_the_standard_library(module: str) -> None:
    """The codec is sans-I/O: nothing but the standard library (and limits) under it."""
    outside = [
        f"line {line}: {name}"
        for name, line in imports_of(module)
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "chatproto"
    ]
    assert outside == []


def cython_imports(text: str) -> list[tuple[str, int]]:
    """Every module Cython source ``text`` imports or cimports (absolute names), with the line."""
    found = []
    for match in CYTHON_IMPORT.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if match["source"]:
            found.append((match["source"], line))
        else:
            found += [(name.split()[0], line) for name in match["names"].split(",")]
    return found


@pytest.mark.parametrize("module", sorted(CYTHON_MODULES))
def test_compiled_twins_import_only_what_their_layer_may(module: str) -> None:
    """A ``.pyx`` imports the standard library, its layer and those below, and Cython's
    declarations: the compiled twin of a sans-I/O module is sans-I/O too."""
    layer = layer_of(module)
    allowed = MAY_IMPORT[layer] | {layer}
    wrong = []
    for name, line in cython_imports(CYTHON_MODULES[module].read_text()):
        top = name.split(".")[0]
        if top == "chatproto":
            if layer_of(name) not in allowed:
                wrong.append(f"line {line}: {name} ({layer_of(name)})")
        elif top not in sys.stdlib_module_names and top not in CYTHON_DECLARATIONS:
            wrong.append(f"line {line}: {name}")
    assert wrong == [], f"{module} ({layer}) may import only {sorted(allowed)}"


def test_the_compiled_twin_import_reader_sees_every_form() -> None:
    """The ``.pyx`` import reader finds from-imports, cimports and plain imports, indented too."""
    text = (
        "from libc.string cimport memchr\n"
        "cimport cython\n"
        "import re, os as system\n"
        "from chatproto.wire.buffer import LINE_TOO_LONG\n"
        "    from twisted.internet import reactor\n"
        "import of prose in a docstring is no import.\n"
    )
    assert cython_imports(text) == [
        ("libc.string", 1),
        ("cython", 2),
        ("re", 3),
        ("os", 3),
        ("chatproto.wire.buffer", 4),
        ("twisted.internet", 5),
    ]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_cluster_imports_redis(module: str) -> None:
    """txredisapi is the ``[cluster]`` extra's: no other layer may need it."""
    if layer_of(module) != "cluster":
        assert not [name for name, _ in imports_of(module) if name.startswith("txredisapi")]


def test_no_import_cycles() -> None:
    """No module imports, directly or through others, one that imports it."""
    graph = {module: {name for name, _ in internal_imports(module)} for module in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if target == module or target not in graph:
                continue
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_every_layer_is_checked() -> None:
    """Each subpackage and top-level module has a layer, and each layer has modules."""
    assert {layer_of(module) for module in MODULES} == set(MAY_IMPORT)
