"""The package's shape: no import circle (lazy imports included), no module
over 600 lines, one definition of the component kinds and of the pinball
loss, and every public import path of 0.1.0 still there."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "pricetune"


def _modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the package."""
    modules = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, name: str, modules: dict) -> set[str]:
    """The package modules ``name`` imports anywhere in its body (inside
    functions too), leaving out ``if TYPE_CHECKING:`` blocks, which never
    run."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def visit(node):
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {target for target in found if target in modules and target != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []
    counter = [0]

    def connect(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_no_import_circle_inside_the_package():
    modules = _modules()
    graph = {name: _imports(path, name, modules) for name, path in modules.items()}
    assert graph["pricetune.estimators.forecaster"]  # the parser sees imports
    assert "pricetune.components.losses" in graph["pricetune.nn.quantiles"]  # lazy
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_module_is_over_600_lines():
    long = {
        str(path.relative_to(SOURCE)): len(path.read_text().splitlines())
        for path in SOURCE.rglob("*.py")
        if len(path.read_text().splitlines()) > 600
    }
    assert long == {}


def _assignments(name: str) -> list[str]:
    where = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                where.append(module)
    return where


def test_the_component_kinds_are_defined_once():
    assert _assignments("KINDS") == ["pricetune.registry"]
    assert not [m for m in _assignments("_KINDS")]


def test_the_pinball_loss_is_written_once():
    """The formula ``max(q e, (q - 1) e)`` appears in one module; the
    others call it."""
    written = [
        module
        for module, path in _modules().items()
        if "(levels - 1.0) * error" in path.read_text()
        or "maximum(levels" in path.read_text()
    ]
    assert written == ["pricetune.components.losses"]


#: public names and the import paths of pricetune 0.1.0 that must keep working
PUBLIC = [
    "pricetune.FineTunedPriceForecaster",
    "pricetune.FineTunedPriceRegressor",
    "pricetune.FineTunedPriceDirectionClassifier",
    "pricetune.backtest",
    "pricetune.hookimpl",
    "pricetune.PLUGIN_API_VERSION",
    "pricetune.forecaster.FineTunedPriceForecaster",
    "pricetune.regressor.FineTunedPriceRegressor",
    "pricetune.classifier.FineTunedPriceDirectionClassifier",
    "pricetune.classifier.direction_rows",
    "pricetune.model.PatchForecastModel",
    "pricetune.augmentations.Jitter",
    "pricetune.augmentations.build_augmentations",
    "pricetune.testing.check_backbone",
    "pricetune.testing.check_head",
    "pricetune.testing.check_strategy",
    "pricetune.testing.check_augmentation",
    "pricetune.testing.check_plugin",
    "pricetune.testing.reference_checkpoint",
    "pricetune.backtesting.backtest",
    "pricetune.backtesting.ablation",
    "pricetune.backtesting.train_test",
    "pricetune.backtesting.metrics.pinball_loss",
    "pricetune.persistence.save",
    "pricetune.persistence.load",
    "pricetune.persistence.PersistenceError",
    "pricetune.plugins.get_registry",
    "pricetune.plugins.register_plugin",
    "pricetune.plugins.broken_plugins",
    "pricetune.registry.ComponentRegistry",
    "pricetune.components.contract.Backbone",
    "pricetune.components.contract.Head",
    "pricetune.components.contract.Strategy",
    "pricetune.components.contract.Augmentation",
    "pricetune.components.strategies.LoRA",
    "pricetune.components.language_model.pretrained_body",
    "pricetune.components.huggingface.quiet_transformers",
    "pricetune.datasets.load_brent",
    "pricetune.training.Callback",
    "pricetune.training.TrainingConfig",
    "pricetune.training.Trainer",
]


@pytest.mark.parametrize("path", PUBLIC)
def test_public_import_paths_work(path):
    module, _, name = path.rpartition(".")
    assert getattr(importlib.import_module(module), name) is not None
