"""The documentation cannot drift from the code: every ``python`` code block
in docs/*.md runs, in order, one namespace per page; the forecaster's
docstring example runs; and every built-in component is listed by
``pricetune plugins`` and documented in the tables of docs/components.md
(found from the registry, so a new built-in needs a row there)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pricetune import cli, plugins

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = sorted(path for path in DOCS.glob("*.md") if BLOCK.search(path.read_text()))


def test_the_docs_have_runnable_examples():
    names = {page.name for page in PAGES}
    assert {"quickstart.md", "datasets.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_doc_page_examples_run(page, tmp_path, monkeypatch, clean_plugins):
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    for number, block in enumerate(BLOCK.findall(page.read_text()), start=1):
        code = compile(block, f"{page.name}[block {number}]", "exec")
        exec(code, namespace)  # noqa: S102 - the docs' own examples


def test_your_data_page_commands_run(tmp_path, monkeypatch, capsys):
    """docs/your-data.md: its Python block writes the files, then every
    ``pricetune`` line of its bash blocks runs, in order, and its outputs
    are there."""
    import shlex

    from pricetune.cli import main

    page = (DOCS / "your-data.md").read_text()
    monkeypatch.chdir(tmp_path)
    for block in BLOCK.findall(page):
        exec(compile(block, "your-data.md", "exec"), {})  # noqa: S102
    commands = [
        line
        for block in re.findall(r"^```bash\n(.*?)^```", page, re.S | re.M)
        for line in block.splitlines()
        if line.startswith("pricetune ")
    ]
    assert len(commands) == 5
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
    for directory in ("forecast", "forecast-2010", "forecast-2011"):
        assert (tmp_path / directory / "forecast.csv").is_file()
    assert (tmp_path / "backtest" / "summary.csv").is_file()
    assert (
        "2 series (copper, zinc), monthly, 2004-01 to 2010-12"
        in capsys.readouterr().out
    )


def test_forecaster_docstring_example_runs():
    import doctest

    import pricetune.estimators.forecaster

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(pricetune.estimators.forecaster.FineTunedPriceForecaster)
    examples = [test for test in tests if test.examples]
    assert examples
    for test in examples:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


# ----------------------------------------------------- the built-in components
def _builtins() -> list[tuple[str, str]]:
    plugins.reload_plugins()
    found = [
        (info.kind, info.name)
        for info in plugins.list_components()
        if info.plugin == "builtin"
    ]
    plugins.reload_plugins()
    return found


def _documented_components() -> dict[str, set[str]]:
    """Names in the first column of the ``| name | ...`` tables of
    docs/components.md, by the section (kind) they are in."""
    documented: dict[str, set[str]] = {"backbone": set(), "head": set()}
    documented["strategy"] = set()
    documented["augmentation"] = set()
    kind, in_table = None, False
    for line in (DOCS / "components.md").read_text().splitlines():
        heading = re.match(r"## (\w+)", line)
        if heading:
            kind = heading.group(1).lower()
            in_table = False
        elif line.startswith("| name |"):
            in_table = True
        elif in_table and line.startswith("|") and kind in documented:
            first_cell = line.split("|")[1]
            documented[kind] |= set(re.findall(r"`([^`]+)`", first_cell))
        elif not line.startswith("|"):
            in_table = False
    return documented


@pytest.mark.parametrize(
    ("kind", "name"), _builtins(), ids=[f"{k}-{n}" for k, n in _builtins()]
)
def test_every_builtin_is_listed_and_documented(autoloaded_plugins, capsys, kind, name):
    assert cli.main(["plugins", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["components"]
    rows = [row for row in listed if (row["kind"], row["name"]) == (kind, name)]
    assert len(rows) == 1 and rows[0]["distribution"] == "pricetune"
    assert cli.main(["plugins"]) == 0
    table = capsys.readouterr().out
    assert re.search(rf"^{kind}\s+{re.escape(name)}\s+pricetune\s", table, re.M)
    assert name in _documented_components()[kind], (
        f"{kind} {name!r} is missing from the component tables of docs/components.md"
    )


def test_the_docs_component_tables_are_parsed():
    documented = _documented_components()
    assert {"lstm", "gru", "none"} <= documented["backbone"]
    assert "quantile" in documented["head"]
    assert "lora" in documented["strategy"]
