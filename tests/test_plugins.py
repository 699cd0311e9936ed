"""Plugin loading (pricetune.plugins): the built-ins, plugins found through
entry points, broken plugins, autoload, clashes with built-in names, unknown
names, and plugins registered in-process. (The registry class itself:
test_registry.py; the plugin API's version check and hooks:
test_hookspecs.py.)

Third-party plugins are found through real ``pricetune`` entry points: each
test writes ``<dist>-<version>.dist-info`` folders (METADATA and
entry_points.txt) into ``tmp_path`` and puts it on ``sys.path``, where
``importlib.metadata.entry_points`` finds them. Nothing is pip-installed.
The example plugin's code comes from ``plugins/pricetune-example/src``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pricetune
from pricetune import plugins
from pricetune.components.contract import Augmentation, Backbone, Head, Strategy
from pricetune.components.heads import LinearHead, QuantileHead
from pricetune.components.language_model import HuggingFaceBackbone, MiniLMBackbone
from pricetune.components.simple_backbones import GRUBackbone, LSTMBackbone, NoBackbone
from pricetune.components.strategies import (
    FrozenBackbone,
    FullFineTuning,
    LayerNormOnly,
    LoRA,
)
from pricetune.datasets import load_brent
from pricetune.registry import ComponentRegistry, UnknownComponentError

EXAMPLE_SRC = (
    Path(__file__).resolve().parents[1] / "plugins" / "pricetune-example" / "src"
)
EXAMPLE_DIST, EXAMPLE_VERSION = "pricetune-example", "0.1.0"
EXAMPLE_NAMES = {
    "backbone": "example-mlp",
    "head": "example-mean-pool",
    "strategy": "example-head-only",
}
# the original built-ins; more may be registered (the set is open: see
# registered_builtins() and the meta-tests of tests/test_docs.py)
BUILTINS = {
    ("backbone", "minilm"): MiniLMBackbone,
    ("backbone", "hf"): HuggingFaceBackbone,
    ("backbone", "lstm"): LSTMBackbone,
    ("backbone", "gru"): GRUBackbone,
    ("backbone", "none"): NoBackbone,
    ("head", "linear"): LinearHead,
    ("head", "quantile"): QuantileHead,
    ("strategy", "full"): FullFineTuning,
    ("strategy", "frozen"): FrozenBackbone,
    ("strategy", "layernorm"): LayerNormOnly,
    ("strategy", "lora"): LoRA,
}
# the example forecaster of the brief; cheap enough for every run
EXAMPLE_FORECASTER = dict(
    n_ensemble=1,  # one network: its parts are read below
    backbone="example-mlp",
    head="example-mean-pool",
    strategy="example-head-only",
    context_length=16,
    patch_length=4,
    max_epochs=2,
    random_state=0,
    verbose=0,
)

# test plugin modules written into tmp_path; names are unique to this file
BROKEN_IMPORT_SOURCE = """
raise ImportError("No module named 'pricetune_test_missing_dependency'")
"""
BROKEN_REGISTER_SOURCE = """
from torch import nn

import pricetune


class HalfHead(nn.Module):
    pass


@pricetune.hookimpl
def register_heads(registry):
    registry.add("half-head", HalfHead)
    raise RuntimeError("half-way through registering heads")
"""
UNKNOWN_HOOK_SOURCE = """
from torch import nn

import pricetune


class WidgetBackbone(nn.Module):
    pass


@pricetune.hookimpl
def register_backbones(registry):
    registry.add("widget-backbone", WidgetBackbone)


@pricetune.hookimpl
def register_widgets(registry):
    registry.add("widget", WidgetBackbone)
"""
CLASH_SOURCE = """
from torch import nn

import pricetune


class FakeLSTM(nn.Module):
    pass


@pricetune.hookimpl
def register_backbones(registry):
    registry.add("clash-extra", FakeLSTM)
    registry.add("lstm", FakeLSTM)
"""


class FakeSite:
    """A ``sys.path`` folder holding fake distributions and plugin modules."""

    def __init__(self, root: Path):
        self.root = root
        self.modules: list[str] = []

    def add_module(self, name: str, source: str) -> None:
        (self.root / f"{name}.py").write_text(textwrap.dedent(source))
        self.modules.append(name)
        sys.modules.pop(name, None)
        importlib.invalidate_caches()

    def add_distribution(self, name: str, version: str, entry_points: dict) -> None:
        folder = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        folder.mkdir()
        (folder / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        lines = [f"{key} = {value}" for key, value in entry_points.items()]
        (folder / "entry_points.txt").write_text(
            "[pricetune]\n" + "\n".join(lines) + "\n"
        )
        importlib.invalidate_caches()

    def add_example(self) -> None:
        self.add_distribution(
            EXAMPLE_DIST, EXAMPLE_VERSION, {"example": "pricetune_example.plugin"}
        )

    def add_broken(self) -> None:
        """Three broken plugins, one per stage at which a plugin can fail."""
        self.add_module("pricetune_test_broken_import", BROKEN_IMPORT_SOURCE)
        self.add_module("pricetune_test_broken_register", BROKEN_REGISTER_SOURCE)
        self.add_module("pricetune_test_unknown_hook", UNKNOWN_HOOK_SOURCE)
        self.add_distribution(
            "broken-import-dist", "1.0", {"bad-import": "pricetune_test_broken_import"}
        )
        self.add_distribution(
            "broken-register-dist",
            "1.0",
            {"bad-register": "pricetune_test_broken_register"},
        )
        self.add_distribution(
            "unknown-hook-dist", "1.0", {"bad-hook": "pricetune_test_unknown_hook"}
        )


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Fake distributions on ``sys.path``; fresh plugin state before and after."""
    monkeypatch.delenv(plugins.DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = FakeSite(tmp_path)
    plugins.reload_plugins()
    yield fake
    plugins.reload_plugins()
    for name in fake.modules:
        sys.modules.pop(name, None)


def registered_builtins() -> set[tuple[str, str]]:
    """Every (kind, name) the built-in plugin registers, found through the
    hooks with no entry point loaded."""
    from pricetune.components import builtin

    found = set()
    for kind, hook in plugins._HOOK_FOR_KIND.items():
        registry = ComponentRegistry(kind)
        getattr(builtin, hook)(registry)
        found |= {(kind, name) for name in registry.names()}
    return found


def infos_by_name() -> dict:
    return {(info.kind, info.name): info for info in plugins.list_components()}


def error_messages(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "pricetune.plugins" and record.levelno == logging.ERROR
    ]


def brent_copy() -> tuple[pd.Series, pd.Series]:
    y = load_brent("monthly")
    return y, y.copy(deep=True)


# ------------------------------------------------------------------ built-ins
def test_every_builtin_is_listed_with_its_provenance(clean_plugins):
    infos = plugins.list_components()
    builtin = {(i.kind, i.name): i for i in infos if i.distribution == "pricetune"}
    assert set(builtin) == registered_builtins()
    assert set(BUILTINS) <= set(builtin)
    for key, info in builtin.items():
        assert info.cls is BUILTINS.get(key, info.cls), key
        assert info.plugin == "builtin"
        assert info.version == importlib.metadata.version("pricetune")
        assert plugins.get_component(*key) is info.cls
    # sorted by kind (backbone, head, strategy, augmentation), then name
    order = [(i.kind, i.name) for i in infos]
    kind_rank = {"backbone": 0, "head": 1, "strategy": 2, "augmentation": 3}
    assert order == sorted(order, key=lambda key: (kind_rank[key[0]], key[1]))


def test_builtin_classes_follow_the_contract(clean_plugins):
    builtins = {
        (info.kind, info.name): info.cls
        for info in plugins.list_components()
        if info.plugin == "builtin"
    }
    for (kind, name), cls in builtins.items():
        base = {
            "backbone": Backbone,
            "head": Head,
            "strategy": Strategy,
            "augmentation": Augmentation,
        }[kind]
        assert issubclass(cls, base), name


# ------------------------------------------------------------ example plugin
def test_example_plugin_is_found_through_its_entry_point(site):
    site.add_example()
    infos = infos_by_name()
    for kind, name in EXAMPLE_NAMES.items():
        info = infos[(kind, name)]
        assert info.distribution == EXAMPLE_DIST
        assert info.version == EXAMPLE_VERSION
        assert info.plugin == "example"
        assert info.cls.__module__ == "pricetune_example.components"
        assert plugins.get_component(kind, name) is info.cls
    # the built-ins are still there, still from pricetune
    assert infos[("backbone", "lstm")].distribution == "pricetune"
    assert "example" not in {b.name for b in plugins.broken_plugins()}
    assert plugins.get_plugin_manager().has_plugin("example")


def test_forecaster_fits_with_the_example_plugin(site):
    from pricetune import FineTunedPriceForecaster

    site.add_example()
    y = load_brent("monthly")
    forecaster = FineTunedPriceForecaster(**EXAMPLE_FORECASTER)
    assert forecaster.get_tag("capability:pred_int") is False  # a point head
    forecaster.fit(y, fh=[1, 2, 3])
    prediction = forecaster.predict()
    assert len(prediction) == 3
    assert np.isfinite(prediction.to_numpy()).all()
    expected_index = pd.period_range(y.index[-1] + 1, periods=3, freq=y.index.freq)
    assert prediction.index.equals(expected_index)
    # the forecast is in price units, near the last observed prices
    assert np.all(np.abs(prediction.to_numpy() - y.iloc[-1]) < 5 * y.iloc[-24:].std())

    model = forecaster.model_
    assert type(model.backbone).__name__ == "ExampleMLPBackbone"
    assert type(model.head).__name__ == "ExampleMeanPoolHead"
    head_parameters = sum(p.numel() for p in model.head.parameters())
    assert head_parameters == 32 * 3 + 3  # Linear(hidden_size=32, horizon=3)
    assert forecaster.n_trainable_parameters_ == head_parameters
    assert forecaster.n_parameters_ > head_parameters
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert len(forecaster.training_history_) == 2


# ----------------------------------------------------------- broken plugins
def test_broken_plugins_are_skipped_and_reported(site, caplog):
    from pricetune import FineTunedPriceForecaster

    site.add_example()
    site.add_broken()
    with caplog.at_level(logging.ERROR, logger="pricetune.plugins"):
        infos = infos_by_name()

    broken = {b.name: b for b in plugins.broken_plugins()}
    assert set(broken) == {"bad-import", "bad-register", "bad-hook"}
    expected = {
        "bad-import": ("broken-import-dist", "import", "ImportError"),
        "bad-register": ("broken-register-dist", "register_heads", "half-way"),
        "bad-hook": ("unknown-hook-dist", "validate", "register_widgets"),
    }
    messages = error_messages(caplog)
    for name, (distribution, stage, reason) in expected.items():
        assert broken[name].distribution == distribution
        assert broken[name].stage == stage
        assert reason in broken[name].error
        assert any(
            repr(name) in message and distribution in message and stage in message
            for message in messages
        ), (name, messages)

    # nothing of the broken plugins is registered: not the head added before
    # register_heads raised, and not the valid backbone of the plugin that
    # declares an unknown hook
    names = {name for _, name in infos}
    assert "half-head" not in names
    assert "widget-backbone" not in names
    assert "widget" not in names
    with pytest.raises(UnknownComponentError):
        plugins.get_component("head", "half-head")
    assert not plugins.get_plugin_manager().has_plugin("bad-hook")

    # the built-ins and the good plugin still work
    for kind, name in EXAMPLE_NAMES.items():
        assert infos[(kind, name)].distribution == EXAMPLE_DIST
    for (kind, name), cls in BUILTINS.items():
        assert plugins.get_component(kind, name) is cls
    y = load_brent("monthly")
    for settings in (
        EXAMPLE_FORECASTER,
        {
            **EXAMPLE_FORECASTER,
            "backbone": "lstm",
            "strategy": "full",
            "backbone_kwargs": {"hidden_size": 8},
        },
    ):
        forecaster = FineTunedPriceForecaster(**settings).fit(y, fh=[1, 2])
        assert np.isfinite(forecaster.predict().to_numpy()).all()


def test_broken_plugins_change_nothing_else(site, caplog):
    before = plugins.list_components()
    assert plugins.broken_plugins() == []
    site.add_broken()
    plugins.reload_plugins()
    with caplog.at_level(logging.ERROR, logger="pricetune.plugins"):
        after = plugins.list_components()
    assert after == before
    assert {b.name for b in plugins.broken_plugins()} == {
        "bad-import",
        "bad-register",
        "bad-hook",
    }
    assert len(error_messages(caplog)) == 3


def test_broken_state_is_forgotten_on_reload(site):
    site.add_broken()
    assert len(plugins.broken_plugins()) == 3
    plugins.reload_plugins()
    for name in site.modules:
        (site.root / f"{name}.py").unlink()
    for folder in site.root.glob("*.dist-info"):
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    importlib.invalidate_caches()
    assert plugins.broken_plugins() == []


# ------------------------------------------------------------------ autoload
def test_disable_autoload_loads_only_the_builtins(site, monkeypatch):
    site.add_example()
    site.add_broken()
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    plugins.reload_plugins()
    names = {(info.kind, info.name) for info in plugins.list_components()}
    assert names == registered_builtins()
    assert plugins.broken_plugins() == []
    with pytest.raises(UnknownComponentError):
        plugins.get_component("backbone", "example-mlp")

    # the same folder with autoload on: the example is found, so its absence
    # above is the switch's doing
    monkeypatch.delenv(plugins.DISABLE_AUTOLOAD_ENV)
    plugins.reload_plugins()
    names = {(info.kind, info.name) for info in plugins.list_components()}
    assert set(EXAMPLE_NAMES.items()) <= names
    assert len(plugins.broken_plugins()) == 3


# -------------------------------------------------------------------- clashes
def test_plugin_cannot_replace_a_builtin(site, caplog):
    site.add_module("pricetune_test_clash", CLASH_SOURCE)
    site.add_distribution("clash-dist", "2.0", {"clash": "pricetune_test_clash"})
    with caplog.at_level(logging.ERROR, logger="pricetune.plugins"):
        infos = infos_by_name()

    lstm = infos[("backbone", "lstm")]
    assert lstm.cls is LSTMBackbone
    assert (lstm.plugin, lstm.distribution) == ("builtin", "pricetune")
    assert plugins.get_component("backbone", "lstm") is LSTMBackbone
    messages = error_messages(caplog)
    assert any(
        "'clash'" in message and "clash-dist" in message and "'lstm'" in message
        for message in messages
    ), messages
    # the plugin's other, non-clashing name is kept, with its provenance
    extra = infos[("backbone", "clash-extra")]
    assert (extra.plugin, extra.distribution, extra.version) == (
        "clash",
        "clash-dist",
        "2.0",
    )


HALF_BROKEN_SOURCE = """
from torch import nn

import pricetune


class HalfBackbone(nn.Module):
    pass


@pricetune.hookimpl
def register_backbones(registry):
    registry.add("half-backbone", HalfBackbone)


@pricetune.hookimpl
def register_heads(registry):
    raise RuntimeError("heads are broken")


@pricetune.hookimpl
def register_strategies(registry):
    raise RuntimeError("strategies are broken too")
"""
TRYLAST_SOURCE = """
from torch import nn

import pricetune


class SneakyLSTM(nn.Module):
    pass


@pricetune.hookimpl(trylast=True)
def register_backbones(registry):
    registry.add("lstm", SneakyLSTM)
"""


def test_entry_point_to_an_already_loaded_module_keeps_it(site):
    site.add_distribution(
        "again-dist", "1.0", {"again": "pricetune.components.builtin"}
    )
    names = {(info.kind, info.name) for info in plugins.list_components()}
    broken = [(b.name, b.stage) for b in plugins.broken_plugins()]
    assert broken == [("again", "validate")]
    assert names == registered_builtins()


def test_a_plugin_that_fails_in_one_hook_registers_nothing(site):
    site.add_module("pricetune_test_half_broken", HALF_BROKEN_SOURCE)
    site.add_distribution("half-dist", "1.0", {"half": "pricetune_test_half_broken"})
    names = {name for _, name in infos_by_name()}
    assert "half-backbone" not in names
    broken = [(b.name, b.stage) for b in plugins.broken_plugins()]
    assert broken == [("half", "register_heads")]


def test_trylast_does_not_let_a_plugin_take_a_builtin_name(site):
    site.add_module("pricetune_test_trylast", TRYLAST_SOURCE)
    site.add_distribution("trylast-dist", "1.0", {"sneaky": "pricetune_test_trylast"})
    assert plugins.get_component("backbone", "lstm") is LSTMBackbone


# -------------------------------------------------------------- unknown names
def test_unknown_name_lists_the_known_ones_and_suggests(clean_plugins):
    with pytest.raises(UnknownComponentError) as caught:
        plugins.get_component("backbone", "minlm")
    message = str(caught.value)
    assert "Did you mean 'minilm'?" in message
    for name in plugins.get_registry("backbone").names():
        assert name in message
    assert "'minlm'" in message
    assert isinstance(caught.value, ValueError)
    # nothing close: no suggestion
    with pytest.raises(UnknownComponentError) as caught:
        plugins.get_component("head", "zzzzzz")
    assert "Did you mean" not in str(caught.value)
    assert ", ".join(plugins.get_registry("head").names()) in str(caught.value)


def test_unknown_kind_is_a_value_error(clean_plugins):
    with pytest.raises(ValueError, match="kind must be one of"):
        plugins.get_registry("widget")


@pytest.mark.parametrize(
    ("kind", "name", "suggestion"),
    [
        ("backbone", "lstn", "lstm"),
        ("head", "lineer", "linear"),
        ("strategy", "ful", "full"),
    ],
)
def test_forecaster_fit_rejects_an_unknown_name(clean_plugins, kind, name, suggestion):
    from pricetune import FineTunedPriceForecaster

    settings = {"backbone": "none", "head": "linear", "strategy": "full", kind: name}
    forecaster = FineTunedPriceForecaster(
        **settings, context_length=8, patch_length=4, max_epochs=1, verbose=0
    )
    y, original = brent_copy()
    with pytest.raises(UnknownComponentError, match=f"Did you mean '{suggestion}'"):
        forecaster.fit(y, fh=[1, 2])
    pd.testing.assert_series_equal(y, original)
    assert y.attrs == original.attrs
    assert not hasattr(forecaster, "model_")


# ----------------------------------------------------- in-process plugins
def test_register_plugin_in_process(clean_plugins, caplog):
    from types import SimpleNamespace

    class Tiny(Backbone):
        pass

    def register_backbones(registry):
        registry.add("in-process-tiny", Tiny)

    def register_heads(registry):
        raise RuntimeError("half broken")

    good = SimpleNamespace(register_backbones=pricetune.hookimpl(register_backbones))
    assert plugins.register_plugin(good, name="notebook") is True
    info = plugins.get_registry("backbone").info("in-process-tiny")
    assert (info.cls, info.plugin, info.distribution) == (
        Tiny,
        "notebook",
        "(in-process)",
    )
    with pytest.raises(ValueError, match="already registered"):
        plugins.register_plugin(good, name="notebook")

    bad = SimpleNamespace(register_heads=pricetune.hookimpl(register_heads))
    assert plugins.register_plugin(bad, name="notebook-bad") is False
    assert ("notebook-bad", "register_heads") in [
        (b.name, b.stage) for b in plugins.broken_plugins()
    ]
    assert any("notebook-bad" in message for message in error_messages(caplog))
    # the builtins are untouched
    assert plugins.get_component("backbone", "lstm") is LSTMBackbone
