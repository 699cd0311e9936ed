"""Contract tests for pricetune components, for plugin authors.

Call them from your plugin's own tests::

    from pricetune.testing import check_backbone, check_head, check_strategy
    # and check_augmentation for a training-window augmentation

    def test_my_backbone():
        check_backbone("my-backbone")            # by registered name...

    def test_my_head():
        check_head(MyHead, {"dropout": 0.1})     # ...or by class, with kwargs

    def test_everything_my_distribution_registers():
        check_plugin("my-pricetune-plugin")

Each check builds the component at tiny sizes and raises
:class:`ContractError` (an ``AssertionError``, so pytest reports it as a
failure) with a message naming the component and what is wrong: a wrong
shape or dtype, an unknown keyword argument accepted silently, outputs that
depend on the other samples of a batch, a gradient reaching a frozen
parameter, a state dict that does not load back, a forecaster that does not
fit... It returns a :class:`CheckReport` of what passed and of non-fatal
notes. CUDA is checked too when a GPU is present; ``sktime=True`` also runs
sktime's ``check_estimator`` on a forecaster built with the component
(about a minute). pricetune's built-in components are tested with the same
functions.
"""

from __future__ import annotations

# one module per component kind; _common holds what they share and
# in_forecaster the checks that fit a forecaster with the component
from pricetune.testing._common import CheckReport, ContractError
from pricetune.testing.augmentations import check_augmentation
from pricetune.testing.backbones import check_backbone
from pricetune.testing.heads import check_head
from pricetune.testing.plugins import check_component, check_plugin
from pricetune.testing.strategies import check_strategy, reference_checkpoint

__all__ = [
    "CheckReport",
    "ContractError",
    "check_augmentation",
    "check_backbone",
    "check_component",
    "check_head",
    "check_plugin",
    "check_strategy",
    "reference_checkpoint",
]
