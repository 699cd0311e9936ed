"""The contract test kit (pricetune.testing): it passes every built-in
component, found from the registry (so new built-ins are checked too), and
it catches deliberately broken components with messages that say what is
wrong."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pricetune import plugins
from pricetune.components.contract import Augmentation, Backbone, Head, Strategy
from pricetune.testing import (
    CheckReport,
    ContractError,
    check_augmentation,
    check_backbone,
    check_component,
    check_head,
    check_plugin,
    check_strategy,
    reference_checkpoint,
)


def _builtins() -> list[tuple[str, str]]:
    plugins.reload_plugins()
    found = [
        (info.kind, info.name)
        for info in plugins.list_components()
        if info.plugin == "builtin"
    ]
    plugins.reload_plugins()
    return found


BUILTINS = _builtins()
# arguments some built-ins need, or that keep them tiny; any other built-in
# (a new one included) is checked with its defaults
KWARGS = {
    ("backbone", "hf"): lambda: {"path": reference_checkpoint(), "n_layers": 1},
    ("backbone", "minilm"): lambda: {"n_layers": 1},
    ("backbone", "lstm"): lambda: {"hidden_size": 8},
    ("backbone", "gru"): lambda: {"hidden_size": 8},
    ("head", "quantile"): lambda: {"quantiles": [0.1, 0.5, 0.9]},
    ("strategy", "lora"): lambda: {"r": 2},
    ("backbone", "fracast"): lambda: {"window": 32},
}
# other options of the kit for built-ins that need them: the fracast head
# reads the fracast backbone's forecast (48 steps of 9 quantiles)
OPTIONS = {
    ("backbone", "fracast"): {"forecaster_params": {"context_length": 24}},
    ("head", "fracast"): {
        "hidden_size": 9,
        "n_patches": 48,
        "forecaster_params": {
            "backbone": "fracast",
            "backbone_kwargs": {"window": 32},
            "context_length": 24,
        },
    },
}


def test_every_kind_has_builtins():
    assert {kind for kind, _ in BUILTINS} == {
        "backbone",
        "head",
        "strategy",
        "augmentation",
    }


@pytest.mark.parametrize(
    ("kind", "name"), BUILTINS, ids=[f"{kind}-{name}" for kind, name in BUILTINS]
)
def test_builtin_component_passes_the_kit(kind, name):
    kwargs = KWARGS.get((kind, name), dict)()
    report = check_component(kind, name, kwargs, **OPTIONS.get((kind, name), {}))
    assert isinstance(report, CheckReport)
    assert (report.kind, report.name) == (kind, name)
    assert report.cls is plugins.get_component(kind, name)
    if kind == "augmentation":
        assert any("trains a forecaster" in check for check in report.passed)
        return
    assert any("FineTunedPriceForecaster" in check for check in report.passed)
    assert "save/load" in str(report)


def test_kit_runs_sktime_check_estimator_when_asked():
    report = check_backbone("gru", {"hidden_size": 8}, sktime=True)
    assert any("check_estimator" in check for check in report.passed)


def test_strategy_expectations_for_builtins():
    # "gradients flow where the strategy says and nowhere else"
    check_strategy("full", frozen=[], trainable=["*"], forecaster=False)
    check_strategy(
        "frozen",
        frozen=["backbone.body"],
        trainable=["backbone.embedding", "head"],
        forecaster=False,
    )
    report = check_strategy(
        "layernorm",
        frozen=["backbone.body.h.*.attn.*", "backbone.body.h.*.mlp.*"],
        trainable=["backbone.body.h.*.ln_*", "backbone.body.wpe.weight", "head"],
        forecaster=False,
    )
    assert "trains exactly what it says (trainable/frozen patterns)" in report.passed


# ------------------------------------------------------- broken components
N_PATCHES, PATCH = 3, 4


class GoodBackbone(Backbone):
    def __init__(self, *, patch_length, n_patches, hidden_size=8):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Linear(patch_length, hidden_size)
        self.body = nn.Sequential(
            OrderedDict(
                linear=nn.Linear(hidden_size, hidden_size),
                norm=nn.LayerNorm(hidden_size),
            )
        )

    def forward(self, patches):
        return self.body(self.embedding(patches))


class WrongShapeBackbone(GoodBackbone):
    def forward(self, patches):  # forgets a patch
        return super().forward(patches)[:, 1:]


class Float64Backbone(GoodBackbone):
    def forward(self, patches):
        return super().forward(patches).double()


class KwargsSwallowingBackbone(GoodBackbone):
    def __init__(self, *, patch_length, n_patches, hidden_size=8, **ignored):
        super().__init__(patch_length=patch_length, n_patches=n_patches)


class BatchMixingBackbone(GoodBackbone):
    def forward(self, patches):  # normalises over the batch, even in eval
        hidden = super().forward(patches)
        return hidden - hidden.mean(dim=0, keepdim=True)


class NoSuperInitBackbone(nn.Module):
    pass


class UnseededBackbone(GoodBackbone):
    def __init__(self, *, patch_length, n_patches):
        super().__init__(patch_length=patch_length, n_patches=n_patches)
        import numpy as np

        with torch.no_grad():  # numpy's global generator: not seeded by torch
            self.body.norm.bias.copy_(torch.tensor(np.random.normal(size=8)))


class CrossingQuantileHead(Head):
    probabilistic = True

    def __init__(self, *, hidden_size, n_patches, horizon):
        super().__init__()
        self.quantiles = (0.1, 0.5, 0.9)
        self.n_outputs = 3
        self.horizon = horizon
        self.projection = nn.Linear(hidden_size * n_patches, horizon * 3)

    def forward(self, hidden):  # no ordering constraint: quantiles cross
        return self.projection(hidden.flatten(1)).view(-1, self.horizon, 3)

    def loss(self, prediction, target):
        return F.mse_loss(prediction[..., 1], target)


class InconsistentHead(Head):
    probabilistic = True  # but quantiles stays None

    def __init__(self, *, hidden_size, n_patches, horizon):
        super().__init__()
        self.projection = nn.Linear(hidden_size, horizon)

    def forward(self, hidden):
        return self.projection(hidden.mean(1)).unsqueeze(-1)

    def loss(self, prediction, target):
        return F.mse_loss(prediction[..., 0], target)


class VectorLossHead(InconsistentHead):
    probabilistic = False

    def loss(self, prediction, target):  # forgot the reduction
        return (prediction[..., 0] - target) ** 2


class DetachedHead(InconsistentHead):
    probabilistic = False

    def forward(self, hidden):  # cuts the graph: the backbone never learns
        return self.projection(hidden.detach().mean(1)).unsqueeze(-1)


class LeakyFreezeBody(Strategy):
    """Says: the body is frozen. Does: freezes only its weight matrices, so
    biases and LayerNorms still train."""

    def apply(self, model):
        model.requires_grad_(True)
        for parameter in model.backbone.body.parameters():
            if parameter.ndim > 1:
                parameter.requires_grad_(False)


class InPlaceLeak(Strategy):
    """Freezes the body, then changes its frozen weights on every forward."""

    def apply(self, model):
        model.requires_grad_(True)
        body = model.backbone.body
        body.requires_grad_(False)

        def renormalise(module, args):
            with torch.no_grad():
                for parameter in module.parameters():
                    parameter.mul_(0.99)

        body.register_forward_pre_hook(renormalise)


class FreezesEverything(Strategy):
    def apply(self, model):
        model.requires_grad_(False)


class RuntimeErrorOnNoBody(Strategy):
    def apply(self, model):
        model.backbone.body.requires_grad_(False)  # AttributeError without body


class VagueValueError(Strategy):
    def apply(self, model):
        if model.backbone.body is None:
            raise ValueError("cannot apply")
        model.backbone.body.requires_grad_(False)


def _raises(match: str):
    return pytest.raises(ContractError, match=match)


def test_a_good_backbone_passes_without_being_registered():
    report = check_backbone(GoodBackbone, {"hidden_size": 4})
    assert report.name == "GoodBackbone"
    assert any("FineTunedPriceForecaster" in check for check in report.passed)


@pytest.mark.parametrize(
    ("backbone", "message"),
    [
        (WrongShapeBackbone, r"Backbone.*shape \(4, 2, 8\), expected \(4, 3, 8\)"),
        (Float64Backbone, r"has dtype torch.float64, expected torch.float32"),
        (KwargsSwallowingBackbone, r"accepted an unknown keyword .* TypeError"),
        (BatchMixingBackbone, r"depends on the other samples of its batch"),
        (NoSuperInitBackbone, r"must subclass pricetune.components.contract.Backbone"),
        (UnseededBackbone, r"built under the same torch seed differ: 'body.norm.bias'"),
    ],
)  # fmt: skip
def test_kit_catches_a_broken_backbone(backbone, message):
    with _raises(message):
        check_backbone(backbone, forecaster=False)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (CrossingQuantileHead, r"CrossingQuantileHead.*quantiles cross"),
        (InconsistentHead, r"probabilistic is True but quantiles is None"),
        (VectorLossHead, r"must return a scalar tensor, got torch.Size\(\[4, 3\]\)"),
        (DetachedHead, r"gradient does not reach the hidden states"),
    ],
)  # fmt: skip
def test_kit_catches_a_broken_head(head, message):
    with _raises(message):
        check_head(head, forecaster=False)


def test_kit_catches_a_gradient_leaking_into_a_frozen_part():
    # what the strategy says: the body is frozen
    with _raises(
        r"LeakyFreezeBody.*parameter 'backbone.body.h.0.ln_1.weight' should be "
        r"frozen \(it matches 'backbone.body'\) but is trainable: gradients would "
        r"leak into a frozen part"
    ):
        check_strategy(LeakyFreezeBody, frozen=["backbone.body"], forecaster=False)
    # with trainable= alone, everything else must be frozen
    with _raises(r"only parameters matching \['backbone.embedding', 'head'\] should"):
        check_strategy(
            LeakyFreezeBody,
            trainable=["backbone.embedding", "head"],
            forecaster=False,
        )
    # with no declaration at all: a frozen weight that changes while training
    with _raises(
        r"InPlaceLeak.*frozen parameter 'backbone.body.*' \(requires_grad=False\) "
        r"changed in optimiser step 1: a gradient leaks into a frozen part"
    ):
        check_strategy(InPlaceLeak, forecaster=False)


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (FreezesEverything, r"leaves no parameter trainable"),
        (RuntimeErrorOnNoBody, r"NoBackbone\) apply raised AttributeError"),
        (VagueValueError, r"ValueError\('cannot apply'\), which must name the"),
    ],
)  # fmt: skip
def test_kit_catches_a_broken_strategy(strategy, message):
    with _raises(message):
        check_strategy(strategy, forecaster=False)


def test_patterns_that_match_nothing_are_reported():
    with _raises(r"pattern 'backbone.bodyy' matches no parameter"):
        check_strategy("frozen", frozen=["backbone.bodyy"], forecaster=False)


def test_strategy_that_cannot_apply_to_the_chosen_backbone():
    with _raises(r"cannot apply to NoBackbone: .*Pass backbone="):
        check_strategy("frozen", backbone="none", forecaster=False)


def test_contract_error_is_an_assertion_error():
    assert issubclass(ContractError, AssertionError)


def test_check_plugin_reports_unknown_or_broken_distributions():
    with _raises(r"no component is registered by 'not-installed-dist'"):
        check_plugin("not-installed-dist")


def test_check_plugin_checks_the_builtins_of_one_kind_by_plugin_name(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "pricetune.testing.plugins.check_component",
        lambda kind, name, kwargs, **options: calls.append((kind, name, kwargs)),
    )
    check_plugin("builtin", {"hf": {"path": "x"}}, skip=["minilm"])
    assert ("backbone", "hf", {"path": "x"}) in calls
    assert ("backbone", "minilm", None) not in calls
    assert {kind for kind, _, _ in calls} == {
        "backbone",
        "head",
        "strategy",
        "augmentation",
    }


class InPlaceAugmentation(Augmentation):
    def __call__(self, context, target):
        context += 1.0
        return context, target


class ShortAugmentation(Augmentation):
    def __call__(self, context, target):
        return context[:, 1:], target


class NoOpAugmentation(Augmentation):
    def __call__(self, context, target):
        return context.clone(), target.clone()


class DirectionFlippingAugmentation(Augmentation):
    keeps_direction = True  # but it does not

    def __call__(self, context, target):
        return context, 2 * context[:, -1:] - target


class UnseededAugmentation(Augmentation):
    def __call__(self, context, target):
        noise = torch.from_numpy(np.random.default_rng().normal(size=context.shape))
        return context + noise.float(), target


@pytest.mark.parametrize(
    ("augmentation", "message"),
    [
        (InPlaceAugmentation, r"modified its input tensors in place"),
        (ShortAugmentation, r"as \(32, 15\) torch.float32; expected \(32, 16\)"),
        (NoOpAugmentation, r"changed nothing"),
        (UnseededAugmentation, r"different results under the same torch seed"),
        (DirectionFlippingAugmentation, r"declares keeps_direction = True but"),
    ],
)  # fmt: skip
def test_kit_catches_a_broken_augmentation(augmentation, message):
    with _raises(message):
        check_augmentation(augmentation, forecaster=False)


def test_kit_catches_an_augmentation_predict_calls(monkeypatch):
    from pricetune.estimators import fine_tuning

    original = fine_tuning.FineTuningMixin._raw_outputs

    def augmenting_predict(self, contexts, covariates=None, denormalise=True):
        from pricetune.components.augmentations import build_augmentations

        for augmentation in build_augmentations(self.augmentations):
            context = torch.tensor(np.atleast_2d(contexts), dtype=torch.float32)
            augmentation(context, torch.zeros(len(context), 1))
        return original(self, contexts, covariates, denormalise)

    monkeypatch.setattr(fine_tuning.FineTuningMixin, "_raw_outputs", augmenting_predict)
    with _raises(r"was called during predict"):
        check_augmentation("jitter")
