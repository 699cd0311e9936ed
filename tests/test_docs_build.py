"""The documentation site builds with ``mkdocs build --strict`` (no warning
allowed), and the MkDocs hook that renders links to files outside docs/."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hook(name):
    spec = importlib.util.spec_from_file_location(
        f"pricetune_docs_{name}", ROOT / "docs" / "_hooks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_links_outside_the_docs_become_paths():
    page = SimpleNamespace(file=SimpleNamespace(src_uri="performance.md"))
    hook = _hook("links").on_page_markdown
    text = (
        "see [benchmarks/README.md](../benchmarks/README.md), "
        "[the notes](../src/x/README.md#usage) and [plugins](plugins.md#top)"
    )
    assert hook(text, page=page, config=None, files=None) == (
        "see `benchmarks/README.md`, the notes (`src/x/README.md`) and "
        "[plugins](plugins.md#top)"
    )


@pytest.mark.skipif(
    importlib.util.find_spec("griffe") is None,
    reason="mkdocstrings-python is not installed (pip install -e '.[docs]')",
)
def test_sphinx_roles_become_inline_code_in_the_api_reference():
    plain_roles = _hook("sphinx_roles").plain_roles
    text = (
        "a :class:`~pricetune.reading.DataFileError`, see "
        ":func:`pricetune.persistence.save` and :py:meth:`~x.Y.fit`; "
        "``code`` and :math stay"
    )
    assert plain_roles(text) == (
        "a `DataFileError`, see `pricetune.persistence.save` and `fit`; "
        "``code`` and :math stay"
    )


def test_the_site_config_is_strict_and_has_a_home_page():
    config = (ROOT / "mkdocs.yml").read_text()
    assert "strict: true" in config
    assert (ROOT / "docs" / "index.md").is_file()


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed (pip install -e '.[docs]'; tox -e docs)",
)
def test_the_docs_build_without_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"]
        + ["-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr
    for page in ("plugins", "plugin-tutorial", "hooks", "api"):
        assert (tmp_path / "site" / page / "index.html").is_file()
    # the API reference is rendered from the imported estimators: their
    # parameter lists, assembled when the classes are defined, are there
    # with their defaults, and no Sphinx role is left as raw text
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for anchor in (
        "pricetune.estimators.forecaster.FineTunedPriceForecaster",
        "pricetune.reading.read_prices",
        "pricetune.backtesting.backtest",
        "pricetune.training.callbacks.Callback",
    ):
        assert f'id="{anchor}"' in api
    assert "{parameters}" not in api
    assert "steps_per_epoch" in api and "min_scale" in api
    assert ":class:" not in api and ":func:" not in api
