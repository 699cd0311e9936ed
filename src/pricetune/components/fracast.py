"""Fracast-0, a small pretrained time-series model (the ``fracast`` package,
Apache-2.0, weights in its wheel), as a backbone and a head.

Unlike a language model, Fracast brings its own forecast head and its own
input scaling, both pretrained. The backbone therefore holds the whole
network: ``body`` is Fracast's encoder (what the strategies freeze or adapt)
and ``decoder`` its pretrained quantile head (trainable under every
strategy, as a head is). Its output is Fracast's forecast, quantiles at
Fracast's levels for its native horizon in the forecaster's normalised
units: ``(batch, 48, 9)``. The ``fracast`` head reads the first ``horizon``
steps of it, so that ``backbone="fracast", head="fracast"`` before any
training forecasts exactly as Fracast does zero-shot; any other head (a
``quantile`` head, say) learns a map from Fracast's forecast instead.

Fracast reads the raw series at full resolution, so the backbone puts the
forecaster's patches back together into the context window (whatever the
patch length and stride) and scales it as Fracast does (min-max over the
window; affine, so the forecaster's own per-window scaling before it
changes nothing), left-padded to ``window`` positions with the padding
masked, exactly as ``fracast.FracastModel.forecast`` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pricetune.components import losses
from pricetune.components.contract import Backbone, Head, check_quantile_levels

WEIGHT_FORMATS = ("fp32", "w8")
# fracast's own floor of a window's span, in its input units
_MIN_SPAN = 1e-5


def fracast_weights_dir() -> Path:
    """The directory of the weights that ship in the ``fracast`` wheel."""
    try:
        import fracast
    except ImportError as error:
        raise ModuleNotFoundError(
            "backbone 'fracast' needs the fracast package: pip install fracast "
            "(or pip install 'pricetune[baselines]')"
        ) from error
    return Path(fracast.__file__).resolve().parent / "weights"


def load_fracast_network(model_dir=None, weights: str = "fp32", pretrained=True):
    """``(encoder, head, config)`` of Fracast from ``model_dir`` (default: the
    weights in the ``fracast`` wheel; nothing is downloaded). With
    ``pretrained=False`` the same architecture, randomly initialised."""
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {WEIGHT_FORMATS}, got {weights!r}")
    directory = fracast_weights_dir() if model_dir is None else Path(model_dir)
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"no Fracast release in {directory}: config.json is missing"
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if pretrained:
        from fracast.inference import load_fracast

        encoder, head = load_fracast(directory, weights=weights)
    else:
        from fracast._core.model import build_from_cfg

        encoder, head = build_from_cfg(
            {key: config[key] for key in ("model", "pyramid")}
        )
    return encoder, head, config


def series_from_patches(patches: torch.Tensor, stride: int) -> torch.Tensor:
    """The window the patches were cut from: ``(batch, n_patches,
    patch_length)`` patches ``stride`` apart -> ``(batch, used_length)``."""
    patch_length = patches.shape[-1]
    if stride > patch_length:
        raise ValueError(
            f"patches {stride} apart but {patch_length} long leave gaps: "
            "Fracast reads the whole window (use patch_stride <= patch_length)"
        )
    first = patches[:, 0, :]
    rest = patches[:, 1:, patch_length - stride :].flatten(1)
    return torch.cat([first, rest], dim=1)


class FracastBackbone(Backbone):
    """Fracast-0's pretrained encoder and quantile head; its output is
    Fracast's forecast ``(batch, 48, 9)`` in normalised units.

    Parameters
    ----------
    window : int, optional
        positions the encoder reads: the context window, left-padded (and
        masked) to this length. Default: Fracast's own 2,048, with which an
        untrained model forecasts as Fracast does; a shorter window is
        faster to train (the encoder is convolutional, so the same weights
        apply). At least the forecaster's ``context_length``.
    weights : {"fp32", "w8"}, default "fp32"
        the full-precision weights or the int8 release.
    pretrained : bool, default True
        ``False``: the same architecture with random weights (the
        ablation's control).
    model_dir : path, optional
        a local Fracast release directory (``config.json`` and the weight
        files); default the weights in the ``fracast`` wheel.
    """

    #: the forecaster passes ``patch_stride`` too: the series is put back
    #: together from the patches
    reads_series = True
    lora_target_modules = ["in_proj", "proj", "pw", "up", "down", "to_gb"]

    def __init__(
        self,
        *,
        patch_length: int,
        n_patches: int,
        patch_stride: int,
        window: int | None = None,
        weights: str = "fp32",
        pretrained: bool = True,
        model_dir=None,
    ):
        super().__init__()
        encoder, decoder, config = load_fracast_network(
            model_dir, weights, bool(pretrained)
        )
        native_window = int(config["model"]["W"])
        self.patch_stride = int(patch_stride)
        self.context_positions = patch_length + (n_patches - 1) * self.patch_stride
        self.window = native_window if window is None else int(window)
        if self.window < self.context_positions:
            raise ValueError(
                f"backbone 'fracast': window ({self.window}) must be at least "
                f"the context the patches cover ({self.context_positions})"
            )
        # the encoder is convolutional: the same weights read any window
        encoder.W = self.window
        encoder.level_widths = [self.window]
        if encoder.periodic is not None:
            encoder.periodic.W = self.window
        self.body = encoder
        self.decoder = decoder
        self.quantiles = tuple(float(q) for q in config["model"]["quantiles"])
        self.native_horizon = int(config["model"]["horizon"])
        self.hidden_size = len(self.quantiles)
        #: the length of the output's second axis (the head's ``n_patches``)
        self.n_tokens = self.native_horizon

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        series = series_from_patches(patches, self.patch_stride)
        low = series.min(dim=1, keepdim=True).values
        span = (series.max(dim=1, keepdim=True).values - low).clamp_min(_MIN_SPAN)
        scaled = (series - low) / span
        batch, length = scaled.shape
        values = scaled.new_zeros(batch, self.window)
        values[:, self.window - length :] = scaled
        mask = torch.zeros(batch, self.window, dtype=torch.bool, device=series.device)
        mask[:, self.window - length :] = True
        values, mask = values.unsqueeze(1), mask.unsqueeze(1)
        hidden = self.body(values, mask, mask.to(values.dtype))
        forecast = self.decoder.forward_horizon(
            hidden, last_obs=values[:, 0, -1:], ctx=values[:, 0], ctx_mask=mask[:, 0]
        )
        return forecast * span.unsqueeze(-1) + low.unsqueeze(-1)


class FracastHead(Head):
    """Reads the first ``horizon`` steps of the ``fracast`` backbone's
    forecast (quantiles put in order), trained with the pinball loss at
    Fracast's levels (0.1 to 0.9). It has no parameters of its own: the
    pretrained quantile head sits in the backbone.

    Parameters
    ----------
    quantiles : sequence of float, default Fracast's levels (0.1, ..., 0.9)
        must match the backbone's outputs, one level per output.
    """

    probabilistic = True

    def __init__(
        self,
        *,
        hidden_size: int,
        n_patches: int,
        horizon: int,
        quantiles=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    ):
        super().__init__()
        self.quantiles = check_quantile_levels(quantiles)
        if hidden_size != len(self.quantiles):
            raise ValueError(
                f"head 'fracast' reads the forecasts of backbone 'fracast' "
                f"({len(self.quantiles)} quantiles per step); this backbone "
                f"gives {hidden_size} values per step"
            )
        if horizon > n_patches:
            raise ValueError(
                f"head 'fracast' forecasts at most {n_patches} steps (Fracast's "
                f"horizon); asked for {horizon}"
            )
        self.horizon = int(horizon)
        self.n_outputs = len(self.quantiles)
        self.register_buffer(
            "levels",
            torch.tensor(self.quantiles, dtype=torch.float32),
            persistent=False,
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # Fracast's quantiles may cross; the contract wants them in order
        return hidden[:, : self.horizon, :].sort(dim=-1).values

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        levels = self.levels.to(prediction.dtype)  # as QuantileHead's loss
        return losses.pinball_loss(target, prediction, levels).mean()
