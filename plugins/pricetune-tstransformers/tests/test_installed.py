"""Tests that need the distribution installed (``pip install
plugins/pricetune-tstransformers``): its backbones are usable by name with no
other step. Skipped when the package is only on ``PYTHONPATH``."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import numpy as np
import pytest

try:
    importlib.metadata.distribution("pricetune-tstransformers")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("pricetune-tstransformers is not installed", allow_module_level=True)


def test_pricetune_plugins_lists_the_backbones():
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
        if row["distribution"] == "pricetune-tstransformers"
    }
    assert mine == {
        ("backbone", "patchtst"),
        ("backbone", "patchtsmixer"),
        ("backbone", "timesfm"),
        ("backbone", "chronos"),
        ("backbone", "chronos-bolt"),
    }
    assert listed["broken"] == []


def test_forecaster_uses_a_local_timesfm_checkpoint_by_name(timesfm_dir):
    from pricetune import FineTunedPriceForecaster
    from pricetune.datasets import load_brent

    forecaster = FineTunedPriceForecaster(
        backbone="timesfm",
        backbone_kwargs={"path": str(timesfm_dir), "freq": 1},
        head="linear",
        strategy="lora",
        strategy_kwargs={"r": 2},
        context_length=16,
        patch_length=4,
        patch_stride=4,
        max_epochs=1,
        random_state=0,
        verbose=0,
    ).fit(load_brent("monthly"), fh=[1, 2, 3])
    assert np.isfinite(forecaster.predict().to_numpy()).all()


def test_every_backbone_passes_the_contract_kit_by_name(
    timesfm_dir, chronos_dir, chronos_bolt_dir
):
    from pricetune.testing import check_plugin

    reports = check_plugin(
        "pricetune-tstransformers",
        {
            "patchtst": {"d_model": 16, "num_attention_heads": 2},
            "patchtsmixer": {"d_model": 8},
            "timesfm": {"path": str(timesfm_dir)},
            "chronos": {"path": str(chronos_dir)},
            "chronos-bolt": {"path": str(chronos_bolt_dir)},
        },
    )
    assert len(reports) == 5
