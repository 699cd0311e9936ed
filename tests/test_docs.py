"""Every ``python`` code block in docs/*.md runs, in order, one namespace per
page, so the documentation cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pricetune import plugins

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = sorted(path for path in DOCS.glob("*.md") if BLOCK.search(path.read_text()))


def test_the_docs_have_runnable_examples():
    names = {page.name for page in PAGES}
    assert {"quickstart.md", "datasets.md"} <= names


@pytest.fixture
def fresh_plugins():
    """Pages may register in-process plugins; later tests must not see them."""
    plugins.reload_plugins()
    yield
    plugins.reload_plugins()


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_doc_page_examples_run(page, tmp_path, monkeypatch, fresh_plugins):
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    for number, block in enumerate(BLOCK.findall(page.read_text()), start=1):
        code = compile(block, f"{page.name}[block {number}]", "exec")
        exec(code, namespace)  # noqa: S102 - the docs' own examples


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
