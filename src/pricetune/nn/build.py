"""Assembling the network from the plugins a config names."""

from __future__ import annotations

import threading

import numpy as np
import torch

from pricetune.nn.model import EnsembleModel, PatchForecastModel, count_patches

# torch's default random generator is process-wide: fits running in threads of
# one process (joblib "threading", Dask without a distributed client) take
# turns at seeding, building and training, so each stays reproducible
TORCH_RNG_LOCK = threading.RLock()


def build_component(config, kind: str, structural: dict):
    """Instantiate the ``kind`` component ``config`` names with the
    estimator's ``structural`` arguments and the user's ``{kind}_kwargs``."""
    cls, user = config.component_class(kind), config.component_kwargs(kind)
    name = getattr(config, kind)
    name = name.__name__ if isinstance(name, type) else name
    clash = sorted(set(structural) & set(user))
    if clash:
        raise ValueError(
            f"{kind}_kwargs must not set {clash}: the estimator sets them "
            f"(use its own parameters instead)"
        )
    try:
        return cls(**structural, **user)
    except TypeError as error:
        raise TypeError(
            f"{kind} {name!r} ({cls.__name__}) rejected its arguments "
            f"{sorted({**structural, **user})}: {error}"
        ) from error


def member_seeds(seed: int, n_members: int) -> list[int]:
    """Seeds of an ensemble's members: ``seed`` first (so that one member is
    the single model), then seeds drawn from it."""
    rest = np.random.RandomState(seed).randint(2**31 - 1, size=n_members - 1)
    return [seed, *(int(s) for s in rest)]


def build_member(
    config, horizon: int, n_covariate_features: int, seed: int, covariate_mask=None
):
    """One :class:`~pricetune.nn.model.PatchForecastModel` and its strategy,
    built from the components ``config`` names, with torch seeded by
    ``seed``; the strategy has been applied. ``covariate_mask`` says which
    covariate values a window reads (:mod:`pricetune.data.covariate_roles`)."""
    n_patches = count_patches(
        config.context_length, config.patch_length, config.patch_stride
    )
    with TORCH_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        structural = {"patch_length": config.patch_length, "n_patches": n_patches}
        if getattr(config.component_class("backbone"), "reads_series", False):
            structural["patch_stride"] = config.patch_stride
        backbone = build_component(config, "backbone", structural)
        head = build_component(
            config,
            "head",
            {
                "hidden_size": backbone.hidden_size,
                "n_patches": getattr(backbone, "n_tokens", None) or n_patches,
                "horizon": horizon,
            },
        )
        strategy = build_component(config, "strategy", {})
        model = PatchForecastModel(
            backbone,
            head,
            context_length=config.context_length,
            patch_length=config.patch_length,
            patch_stride=config.patch_stride,
            normalization=config.normalization,
            horizon=horizon,
            n_covariate_features=n_covariate_features,
            min_scale=config.min_scale,
            covariate_mask=covariate_mask,
        )
        strategy.apply(model)
    return model, strategy


def build_model(
    config, horizon: int, n_covariate_features: int, seed: int, covariate_mask=None
):
    """``(model, strategies, seeds)``: the model of ``config``
    (:class:`~pricetune.nn.model.EnsembleModel` of ``n_ensemble`` members,
    or the one member), the strategy of each member and each member's
    seed (the first is ``seed``, the one a single model would get)."""
    seeds = member_seeds(seed, config.n_ensemble)
    built = [
        build_member(config, horizon, n_covariate_features, s, covariate_mask)
        for s in seeds
    ]
    members = [model for model, _ in built]
    model = members[0] if len(members) == 1 else EnsembleModel(members)
    return model, [strategy for _, strategy in built], seeds
