"""Imports run one way: core -> zoo -> hub/datasets -> runners -> profiler -> leaderboard -> reports -> cli.

Every `import usemabench...` statement of every module (lazy ones inside functions included: a lazy import is
still an arrow) is read with `ast` and checked against ALLOWED, a list of edges written out here rather than
taken from a tool's picture of the package. A module's layer is its subpackage, except the modules that
PLACED names (top-level modules and the command-line wiring).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import usemabench

PACKAGE = Path(usemabench.__file__).resolve().parent

# Which layers a layer may import (itself always). Written out edge by edge, not derived from an order, so that
# a new arrow is a decision made here. hub and datasets both sit on zoo and do not import each other; profiler
# sits on runners (it builds models and losses, and times them at a runner's precision), so runners never
# import the profiler.
ALLOWED = {
    "core": set(),
    "zoo": {"core"},
    "hub": {"core", "zoo"},
    "datasets": {"core", "zoo"},
    "runners": {"core", "zoo", "hub", "datasets"},
    "profiler": {"core", "zoo", "hub", "datasets", "runners"},
    "leaderboard": {"core", "zoo", "hub", "datasets", "runners", "profiler"},
    "reports": {"core", "zoo", "hub", "datasets", "runners", "profiler", "leaderboard"},
    "cli": {"core", "zoo", "hub", "datasets", "runners", "profiler", "leaderboard", "reports"},
}

# Modules whose layer is not their folder's name.
PLACED = {
    # The package itself: `usemabench/__init__.py` re-exports the model registry and (on first use) hub's
    # create_model and from_pretrained, so importing `usemabench` may load hub; zoo and datasets must not import it.
    "usemabench": "hub",
    "usemabench.hub": "hub",  # push and pull of weights: on top of zoo's registry
    # Model cards read the dataset registry and the leaderboard's statistics.
    "usemabench.model_card": "leaderboard",
    # Command-line wiring: each command group registers its own subcommands and may call any layer, so every
    # `commands.py` (zoo/, datasets/, runners/, profiler/, leaderboard/), every top-level `*_commands.py` and the
    # modules only they use sit at the top (see `layer_of`).
    "usemabench.cli": "cli",
    "usemabench.__main__": "cli",
    "usemabench.text_table": "cli",  # plain-text tables of the listing commands
    "usemabench.pretrained_export": "cli",  # `usemabench weights export/publish`: a finished run -> Hub entry
    # `usemabench run` with no arguments: trains, profiles and rebuilds the leaderboard and reports in one call,
    # so it composes every layer; only runners/commands.py calls it.
    "usemabench.runners.main_job": "cli",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """PLACED, else `commands` and `*_commands` modules -> cli, else the subpackage name (usemabench.<layer>....)."""
    if module in PLACED:
        return PLACED[module]
    if module.rsplit(".", 1)[-1] == "commands" or module.endswith("_commands"):
        return "cli"
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in ALLOWED:
        raise LookupError(f"{module} has no layer: add it to PLACED in {Path(__file__).name}")
    return parts[1]


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


@dataclass(frozen=True)
class Import:
    module: str  # the module that imports
    target: str  # the usemabench module it imports
    line: int


def imports_of(path: Path) -> list[Import]:
    """The usemabench modules `path` imports, absolute or relative, at any depth of the file.

    `from usemabench.x import y` targets `usemabench.x.y` when y is a module, else `usemabench.x`.
    """
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            bases, names = [alias.name for alias in node.names], []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                bases = [".".join(anchor + ([node.module] if node.module else []))]
            else:
                bases = [node.module or ""]
            names = [alias.name for alias in node.names]
        else:
            continue
        for base in bases:
            if base != "usemabench" and not base.startswith("usemabench."):
                continue
            submodules = [f"{base}.{name}" for name in names if is_module(f"{base}.{name}")]
            found += [Import(module, target, node.lineno) for target in submodules or [base]]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.relative_to(PACKAGE).as_posix())
def test_imports_run_down_the_layers(path: Path):
    layer = layer_of(module_name(path))
    upward = []
    for item in imports_of(path):
        assert is_module(item.target), f"{path.name}:{item.line} imports {item.target}, which does not exist"
        target_layer = layer_of(item.target)
        if target_layer != layer and target_layer not in ALLOWED[layer]:
            upward.append(f"line {item.line}: {item.module} ({layer}) imports {item.target} ({target_layer})")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize("path", sorted((PACKAGE / "datasets").rglob("*.py")), ids=lambda path: path.name)
def test_datasets_import_nothing_that_trains_or_ranks(path: Path):
    """Not even the `datasets` command wiring: the data layer stands on its own below runners and the leaderboard."""
    above = [f"line {item.line}: {item.target}" for item in imports_of(path)
             if item.target.split(".")[1:2] in (["runners"], ["profiler"], ["leaderboard"], ["reports"])]
    assert not above, "\n".join(above)


def test_the_allowed_edges_have_no_cycle():
    """ALLOWED itself is an order: following its edges never comes back to where it started."""
    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(below == goal or (below not in seen and reaches(below, goal, seen | {below}))
                   for below in ALLOWED[start])

    assert [layer for layer in ALLOWED if reaches(layer, layer)] == []


def test_the_reader_sees_absolute_relative_and_lazy_imports(tmp_path, monkeypatch):
    """The parser itself: an upward import hidden in a function or written relatively is still found."""
    fake = tmp_path / "usemabench"
    for folder in ("datasets", "runners"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "runners" / "train.py").write_text("")
    (fake / "datasets" / "a.py").write_text(
        "import os\n"
        "from . import b\n"
        "def late():\n"
        "    from ..runners import train\n"
        "    import usemabench.runners\n"
    )
    (fake / "datasets" / "b.py").write_text("")
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    found = [(item.target, item.line) for item in imports_of(fake / "datasets" / "a.py")]
    assert found == [("usemabench.datasets.b", 2), ("usemabench.runners.train", 4), ("usemabench.runners", 5)]
    assert layer_of("usemabench.runners.train") not in ALLOWED[layer_of("usemabench.datasets.a")]
