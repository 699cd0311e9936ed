"""The assembled network: normalise, patch, backbone, head, de-normalise."""

from __future__ import annotations

import torch
from torch import nn

from pricetune.nn import NORMALIZATIONS


def count_patches(context_length: int, patch_length: int, patch_stride: int) -> int:
    """Number of patches the model cuts from a context window.

    Patches are aligned to the end of the window, so the newest value is
    always in the last patch; up to ``patch_stride - 1`` of the oldest values
    may be left out.
    """
    if patch_length > context_length:
        raise ValueError(
            f"patch_length ({patch_length}) must not exceed context_length "
            f"({context_length})"
        )
    return (context_length - patch_length) // patch_stride + 1


class PatchForecastModel(nn.Module):
    """Context windows of raw values in, forecasts in normalised units out.

    Per-window (instance) normalisation, chosen by ``normalization``:

    * ``"last"``: subtract the window's last value and divide by the mean
      absolute one-step change in the window. The no-change forecast is then
      the all-zero output, a natural starting point for prices.
    * ``"mean"``: subtract the window's mean, divide by its standard deviation
      (RevIN without the affine part).

    Either scale is at least ``min_scale * (|location| + 1)``: a flat window
    (an administered price, a fixed exchange rate) has no scale of its own.
    """

    #: the floor of models pickled before ``min_scale`` existed
    min_scale = 1e-6

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        *,
        context_length: int,
        patch_length: int,
        patch_stride: int,
        normalization: str = "last",
        horizon: int | None = None,
        n_covariate_features: int = 0,
        min_scale: float = 1e-6,
        covariate_mask=None,
    ):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        self.backbone = backbone
        self.head = head
        self.patch_length = patch_length
        self.patch_stride = patch_stride
        self.n_patches = count_patches(context_length, patch_length, patch_stride)
        self.used_length = (self.n_patches - 1) * patch_stride + patch_length
        self.normalization = normalization
        self.min_scale = float(min_scale)
        # Covariates shift the forecast of every step (every quantile alike,
        # so quantiles still never cross), through one linear map that
        # starts at zero: without signal in them, the model is unchanged.
        self.covariate_effect = None
        if n_covariate_features:
            if horizon is None:
                raise ValueError("horizon is needed to use covariates")
            self.covariate_effect = nn.Linear(n_covariate_features, horizon)
            nn.init.zeros_(self.covariate_effect.weight)
            nn.init.zeros_(self.covariate_effect.bias)
        # which covariate values a window reads (past-only and static
        # columns: pricetune.data.covariate_roles); not saved: fit and load
        # rebuild it from the settings
        if covariate_mask is not None:
            mask = torch.as_tensor(covariate_mask, dtype=torch.float32)
            if mask.shape != (n_covariate_features,):
                raise ValueError(
                    f"covariate_mask must have {n_covariate_features} entries, "
                    f"got shape {tuple(mask.shape)}"
                )
            self.register_buffer("covariate_mask", mask, persistent=False)

    def scaling(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-window location and scale, each of shape ``(batch, 1)``."""
        if self.normalization == "last":
            loc = context[:, -1:]
            scale = context.diff(dim=1).abs().mean(dim=1, keepdim=True)
        else:
            loc = context.mean(dim=1, keepdim=True)
            scale = context.std(dim=1, keepdim=True, unbiased=False)
        # a flat window has no scale: fall back to a fraction of its level
        floor = self.min_scale * (loc.abs() + 1.0)
        return loc, torch.maximum(scale, floor)

    def patches(self, context: torch.Tensor) -> torch.Tensor:
        """``(batch, context_length)`` raw values -> the normalised patches
        ``(batch, n_patches, patch_length)`` the backbone reads."""
        loc, scale = self.scaling(context)
        normalised = (context[:, -self.used_length :] - loc) / scale
        return normalised.unfold(1, self.patch_length, self.patch_stride)

    def forward(
        self, context: torch.Tensor, covariates: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(batch, context_length)`` raw values -> ``(batch, horizon, n_outputs)``
        in normalised units (see :meth:`scaling`).

        ``covariates`` is ``(batch, n_covariate_features)``, already scaled,
        and required exactly when the model was built with covariates.
        """
        output = self.head(self.backbone(self.patches(context)))
        if (covariates is None) != (self.covariate_effect is None):
            raise ValueError(
                "this model was built "
                + ("with" if self.covariate_effect is not None else "without")
                + " covariates; pass them exactly when it was"
            )
        if covariates is not None:
            mask = getattr(self, "covariate_mask", None)  # None: read them all
            if mask is not None:
                covariates = covariates * mask
            output = self.head.shift(output, self.covariate_effect(covariates))
        return output


class EnsembleModel(nn.Module):
    """Several :class:`PatchForecastModel` members trained apart (each from
    its own seed), held together so that they save, load and move between
    devices as one model. It has no forward pass of its own: the members
    forecast one by one and their quantiles are mixed (see
    :meth:`pricetune.estimators.fine_tuning.FineTuningMixin._raw_outputs`)."""

    def __init__(self, members: list[PatchForecastModel]):
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)

    @property
    def head(self) -> nn.Module:
        return self.members[0].head

    @property
    def covariate_effect(self):
        return self.members[0].covariate_effect

    def scaling(self, context: torch.Tensor):
        return self.members[0].scaling(context)
