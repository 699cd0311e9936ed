"""The plugin API (pricetune.hookspecs): its version and the check that
skips incompatible plugins, one test per hook, and meta-tests that keep the
hooks documented (as datasette does).

The meta-tests derive everything from the code: the hook specifications
from ``pricetune.hookspecs``. A new hook needs a ``test_hook_<name>`` here
and a regenerated ``docs/hooks.md``. (That every built-in component is
documented: test_docs.py.)
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from torch import nn

import pricetune
from pricetune import hookspecs, plugins
from pricetune.components.contract import Backbone, Head, Strategy
from pricetune.testing import (
    check_augmentation,
    check_backbone,
    check_head,
    check_strategy,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TESTS = Path(__file__).resolve().parent


def _load_hookdocs():
    """docs/_hooks/hookdocs.py, the generator of docs/hooks.md: a docs tool,
    not part of the package, so it is loaded by path."""
    spec = importlib.util.spec_from_file_location(
        "pricetune_docs_hookdocs", DOCS / "_hooks" / "hookdocs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hookdocs = _load_hookdocs()


def _plugin(version=None, **hooks):
    namespace = SimpleNamespace(**{k: pricetune.hookimpl(v) for k, v in hooks.items()})
    if version is not None:
        setattr(namespace, hookspecs.PLUGIN_API_ATTRIBUTE, version)
    return namespace


class TinyBackbone(Backbone):
    def __init__(self, *, patch_length, n_patches):
        super().__init__()
        self.hidden_size = 4
        self.embedding = nn.Linear(patch_length, 4)

    def forward(self, patches):
        return self.embedding(patches)


def _adds(name, cls):
    def register(registry):
        registry.add(name, cls)

    return register


# ------------------------------------------------------------- API version
def test_plugin_api_version_is_major_minor():
    assert re.fullmatch(r"\d+\.\d+", hookspecs.PLUGIN_API_VERSION)
    assert hookspecs.PLUGIN_API_ATTRIBUTE == "PRICETUNE_PLUGIN_API"


@pytest.mark.parametrize("version", [None, "1", "1.0", " 1.0 "])
def test_compatible_plugins_load(autoloaded_plugins, version):
    plugin = _plugin(version, register_backbones=_adds("api-ok", TinyBackbone))
    assert plugins.api_incompatibility(plugin) is None
    assert plugins.register_plugin(plugin, name="api-ok-plugin") is True
    assert plugins.get_component("backbone", "api-ok") is TinyBackbone


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        ("2.0", r"targets plugin API 2.0, but pricetune .* provides plugin API "
                r"1.0: a different major version is incompatible. Install a "
                r"release of the plugin built for plugin API 1.x, or upgrade"),
        ("0.9", r"targets plugin API 0.9.*built for plugin API 1.x$"),
        ("1.99", r"targets plugin API 1.99, newer than the plugin API 1.0 of "
                 r"pricetune .*: upgrade pricetune"),
        ("one", r"PRICETUNE_PLUGIN_API = 'one' is not a version such as '1.0'"),
        (1, r"PRICETUNE_PLUGIN_API = 1 is not a version"),
    ],
)  # fmt: skip
def test_incompatible_plugins_are_skipped_with_a_clear_message(
    autoloaded_plugins, caplog, version, reason
):
    plugin = _plugin(version, register_backbones=_adds("api-bad", TinyBackbone))
    with caplog.at_level(logging.ERROR, logger="pricetune.plugins"):
        assert plugins.register_plugin(plugin, name="api-bad-plugin") is False
    assert "api-bad" not in plugins.get_registry("backbone")
    broken = [b for b in plugins.broken_plugins() if b.name == "api-bad-plugin"]
    assert len(broken) == 1
    assert broken[0].stage == "api-version"
    assert re.search(reason, broken[0].error), broken[0].error
    assert any(
        "'api-bad-plugin'" in record.getMessage()
        and "api-version" in record.getMessage()
        for record in caplog.records
    )
    assert not plugins.get_plugin_manager().has_plugin("api-bad-plugin")


def test_incompatible_entry_point_plugin_is_skipped(
    autoloaded_plugins, tmp_path, monkeypatch
):
    (tmp_path / "pricetune_test_future_plugin.py").write_text(
        "import pricetune\n"
        "PRICETUNE_PLUGIN_API = '2.0'\n"
        "@pricetune.hookimpl\n"
        "def register_heads(registry):\n"
        "    raise AssertionError('never called')\n"
    )
    info = tmp_path / "future_dist-3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: future-dist\nVersion: 3.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[pricetune]\nfuture = pricetune_test_future_plugin\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reload_plugins()
    try:
        broken = {b.name: b for b in plugins.broken_plugins()}
        assert broken["future"].distribution == "future-dist"
        assert broken["future"].stage == "api-version"
        assert "2.0" in broken["future"].error
        # the built-ins are unaffected
        assert plugins.get_component("head", "linear").__name__ == "LinearHead"
    finally:
        sys.modules.pop("pricetune_test_future_plugin", None)


def test_example_plugin_declares_the_current_api():
    source = (
        ROOT / "plugins" / "pricetune-example" / "src" / "pricetune_example"
    ) / "plugin.py"
    assert f'PRICETUNE_PLUGIN_API = "{hookspecs.PLUGIN_API_VERSION}"' in (
        source.read_text()
    )


# ------------------------------------------------- one test for every hook
def test_hook_register_backbones(autoloaded_plugins):
    plugin = _plugin("1.0", register_backbones=_adds("hook-backbone", TinyBackbone))
    assert plugins.register_plugin(plugin, name="hook-backbones")
    info = plugins.get_registry("backbone").info("hook-backbone")
    assert (info.cls, info.plugin) == (TinyBackbone, "hook-backbones")
    check_backbone("hook-backbone")


def test_hook_register_heads(autoloaded_plugins):
    from pricetune.components.heads import LinearHead

    class MyHead(LinearHead):
        pass

    plugin = _plugin("1.0", register_heads=_adds("hook-head", MyHead))
    assert plugins.register_plugin(plugin, name="hook-heads")
    assert plugins.get_component("head", "hook-head") is MyHead
    check_head("hook-head", forecaster=False)


def test_hook_register_strategies(autoloaded_plugins):
    class TrainAll(Strategy):
        def apply(self, model):
            model.requires_grad_(True)

    plugin = _plugin("1.0", register_strategies=_adds("hook-strategy", TrainAll))
    assert plugins.register_plugin(plugin, name="hook-strategies")
    assert plugins.get_component("strategy", "hook-strategy") is TrainAll
    check_strategy("hook-strategy", forecaster=False)


def test_hook_register_augmentations(autoloaded_plugins):
    from pricetune.components.augmentations import Jitter

    class LouderJitter(Jitter):
        pass

    plugin = _plugin(
        "1.0", register_augmentations=_adds("hook-augmentation", LouderJitter)
    )
    assert plugins.register_plugin(plugin, name="hook-augmentations")
    assert plugins.get_component("augmentation", "hook-augmentation") is LouderJitter
    check_augmentation("hook-augmentation", forecaster=False)
    from pricetune.components.augmentations import build_augmentations

    (built,) = build_augmentations([("hook-augmentation", {"sigma": 0.3})])
    assert isinstance(built, LouderJitter) and built.sigma == 0.3


# ------------------------------------------------------------- meta-tests
def _hook_names() -> list[str]:
    return [spec.__name__ for spec in hookdocs.hook_specs()]


def test_the_hook_specs_are_the_registration_hooks():
    assert set(_hook_names()) == set(plugins._HOOK_FOR_KIND.values())


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_has_a_test(hook):
    tests = "\n".join(path.read_text() for path in TESTS.rglob("test_*.py"))
    assert f"def test_hook_{hook}(" in tests, f"write test_hook_{hook}"


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_is_documented_with_its_signature(hook):
    text = (DOCS / "hooks.md").read_text()
    spec = getattr(hookspecs, hook)
    assert f"### {hook}\n" in text
    assert hookdocs.signature(spec) in text
    assert str(inspect.signature(spec)).startswith("(registry")
    assert f"`{hook}(registry)`" in (DOCS / "plugins.md").read_text()


def test_hook_reference_is_up_to_date():
    assert (DOCS / "hooks.md").read_text() == hookdocs.render(), (
        "docs/hooks.md is out of date: run python docs/_hooks/hookdocs.py --write"
    )
    assert hookdocs.main(["--check", str(DOCS / "hooks.md")]) == 0


def test_hookdocs_check_fails_on_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "hooks.md"
    stale.write_text("# Hook reference\n")
    assert hookdocs.main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert hookdocs.main(["--write", str(stale)]) == 0
    assert hookdocs.main(["--check", str(stale)]) == 0


def test_hookdocs_runs_as_a_script_from_the_repository_root():
    done = subprocess.run(
        [sys.executable, "docs/_hooks/hookdocs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_contract_base_classes_and_hookimpl_are_exported_for_authors():
    assert issubclass(Head, nn.Module) and issubclass(Backbone, nn.Module)
    assert pricetune.hookimpl is hookspecs.hookimpl
    # (was test_plugins.py's test_hookimpl_is_exported)
    assert pricetune.hookimpl is plugins.hookspecs.hookimpl
