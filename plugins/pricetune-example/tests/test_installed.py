"""Tests that need the plugin installed (``pip install plugins/pricetune-example``):
pricetune finds it through its entry point, by name, with no other step.
Skipped when the package is only on ``PYTHONPATH``."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

try:
    importlib.metadata.distribution("pricetune-example")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("pricetune-example is not installed", allow_module_level=True)


def test_pricetune_plugins_lists_the_components():
    output = subprocess.run(
        [sys.executable, "-m", "pricetune.cli", "plugins", "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    listed = json.loads(output)
    mine = {
        (row["kind"], row["name"])
        for row in listed["components"]
        if row["distribution"] == "pricetune-example"
    }
    assert mine == {
        ("backbone", "example-mlp"),
        ("head", "example-mean-pool"),
        ("strategy", "example-head-only"),
    }
    assert listed["broken"] == []


def test_every_component_passes_the_contract_kit_by_name():
    from pricetune.testing import check_plugin

    reports = check_plugin("pricetune-example", {"example-mlp": {"hidden_size": 8}})
    assert [report.name for report in reports] == [
        "example-mlp",
        "example-mean-pool",
        "example-head-only",
    ]


def test_sktime_check_estimator_with_the_example_components():
    from pricetune.testing import check_strategy

    check_strategy(
        "example-head-only",
        backbone="example-mlp",
        backbone_kwargs={"hidden_size": 8},
        head="example-mean-pool",
        trainable=["head"],
        sktime=True,
    )
