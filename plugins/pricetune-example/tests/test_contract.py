"""The example plugin's components against pricetune's contract test kit.

``pricetune.testing`` builds each component at tiny sizes and checks shapes,
dtypes, gradients, seeding, save/load, the CPU and (when present) CUDA, and
a forecaster that uses it. Copy this file into your own plugin.
"""

from __future__ import annotations

from pricetune.testing import check_backbone, check_head, check_strategy

from pricetune_example.components import (
    ExampleHeadOnly,
    ExampleMeanPoolHead,
    ExampleMLPBackbone,
)


def test_backbone_contract():
    check_backbone(ExampleMLPBackbone, {"hidden_size": 8})


def test_head_contract():
    check_head(ExampleMeanPoolHead)


def test_strategy_contract():
    # what the strategy says: the head trains, nothing else does
    check_strategy(ExampleHeadOnly, trainable=["head"])
