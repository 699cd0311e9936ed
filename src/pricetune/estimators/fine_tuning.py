"""What the forecaster and the regressor share: checking their parameters,
assembling the model from plugins, training it, and running it.

:class:`FineTuningMixin` expects the estimator to have the parameters
documented on :class:`~pricetune.FineTunedPriceForecaster` (``backbone``,
``head``, ``strategy``, their ``*_kwargs``, ``context_length``,
``patch_length``, ``patch_stride``, ``normalization``, ``max_epochs``,
``batch_size``, ``learning_rate``, ``weight_decay``, ``patience``,
``validation_fraction``, ``device``, ``precision``, ``random_state``,
``verbose``).
"""

from __future__ import annotations

import numbers
import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from pricetune.plugins import get_component
from pricetune.registry import UnknownComponentError

KINDS = ("backbone", "head", "strategy")

# torch's default random generator is process-wide: fits running in threads of
# one process (joblib "threading", Dask without a distributed client) take
# turns at seeding, building and training, so each stays reproducible
_TORCH_RNG_LOCK = threading.RLock()


def head_is_probabilistic(head: object, head_kwargs=None) -> bool:
    """Whether the head named ``head``, built with ``head_kwargs``, gives
    quantiles (an unknown name or bad kwargs count as yes here; ``fit``
    reports them)."""
    try:
        cls = get_component("head", head)
    except UnknownComponentError:
        return True
    try:
        return bool(cls.gives_quantiles(dict(head_kwargs or {})))
    except (AttributeError, TypeError, ValueError):
        return bool(getattr(cls, "probabilistic", False))


def check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def check_kwargs(name: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict or None, got {value!r}")
    return dict(value)


def build_component(
    kind: str, name: str, structural: dict, user: dict, cls: type | None = None
):
    """Instantiate the ``kind`` component ``name`` (the class ``cls``, by
    default the one registered under ``name``)."""
    cls = get_component(kind, name) if cls is None else cls
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


def _with_suffix(path, suffix: str | None) -> str | None:
    """``path`` with ``.suffix`` before its extension (``log.csv`` ->
    ``log.member-1.csv``); ``path`` itself without a suffix."""
    if path is None:
        return None
    if suffix is None:
        return str(path)
    root, extension = os.path.splitext(str(path))
    return f"{root}.{suffix}{extension}"


@dataclass(frozen=True)
class Settings:
    """The checked, resolved form of an estimator's parameters."""

    context_length: int
    patch_length: int
    patch_stride: int
    backbone_kwargs: dict
    head_kwargs: dict
    strategy_kwargs: dict
    n_ensemble: int = 1


class FineTuningMixin:
    """Model assembly and training for pricetune's estimators."""

    def _check_settings(self) -> Settings:
        from pricetune.nn.model import NORMALIZATIONS
        from pricetune.training import PRECISIONS

        context_length = check_int("context_length", self.context_length, 2)
        patch_length = check_int("patch_length", self.patch_length, 1)
        if patch_length > context_length:
            raise ValueError(
                f"patch_length ({patch_length}) must not exceed context_length "
                f"({context_length})"
            )
        patch_stride = (
            max(1, patch_length // 2)
            if self.patch_stride is None
            else check_int("patch_stride", self.patch_stride, 1)
        )
        check_int("max_epochs", self.max_epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("patience", self.patience, 1)
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, "
                f"got {self.normalization!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        from pricetune.training import LR_SCHEDULES

        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}"
            )
        if not 0.0 <= float(self.warmup_fraction) < 1.0:
            raise ValueError(
                f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}"
            )
        if self.gradient_clip is not None and not float(self.gradient_clip) > 0:
            raise ValueError(
                f"gradient_clip must be positive or None, got {self.gradient_clip}"
            )
        check_int("accumulate_batches", self.accumulate_batches, 1)
        if not float(self.learning_rate) > 0:
            raise ValueError(
                f"learning_rate must be positive, got {self.learning_rate}"
            )
        from pricetune.training import COMPILE_MODES

        if self.tensorboard_dir is not None:
            try:
                import tensorboard  # noqa: F401
            except ImportError as error:
                raise ImportError(
                    "tensorboard_dir needs the tensorboard package: pip install "
                    "tensorboard (or pricetune[tensorboard])"
                ) from error

        if not (isinstance(self.compile, bool) or self.compile in COMPILE_MODES):
            raise ValueError(
                f"compile must be True, False or one of {COMPILE_MODES}, "
                f"got {self.compile!r}"
            )
        n_ensemble = check_int("n_ensemble", self.n_ensemble, 1)
        if not float(self.adversarial_epsilon) >= 0:
            raise ValueError(
                "adversarial_epsilon must be zero (off) or positive, got "
                f"{self.adversarial_epsilon}"
            )
        if getattr(self, "calibrate_intervals", False):
            if float(self.validation_fraction) == 0:
                raise ValueError(
                    "calibrate_intervals needs validation windows to calibrate "
                    "on: set validation_fraction above 0"
                )
            if not head_is_probabilistic(self.head, self.head_kwargs):
                raise ValueError(
                    f"calibrate_intervals needs a head that gives quantiles; "
                    f"{self.head!r} gives point forecasts only"
                )
        if self.ema_epochs is not None and not float(self.ema_epochs) > 0:
            raise ValueError(
                f"ema_epochs must be positive or None, got {self.ema_epochs}"
            )
        from pricetune.components.augmentations import build_augmentations

        build_augmentations(self.augmentations)  # names and settings checked
        for kind in KINDS:
            # resolve early: an unknown name fails before any work is done
            self._component_class(kind)
        return Settings(
            context_length=context_length,
            patch_length=patch_length,
            patch_stride=patch_stride,
            backbone_kwargs=check_kwargs("backbone_kwargs", self.backbone_kwargs),
            head_kwargs=check_kwargs("head_kwargs", self.head_kwargs),
            strategy_kwargs=check_kwargs("strategy_kwargs", self.strategy_kwargs),
            n_ensemble=n_ensemble,
        )

    def _component_class(self, kind: str) -> type:
        """The class of the estimator's ``kind`` component: the registered
        plugin its parameter of that name names (an estimator with a fixed
        component overrides this)."""
        return get_component(kind, getattr(self, kind))

    def _assemble(self, settings: Settings, horizon: int, n_covariate_features: int):
        """Build the model from the plugins, apply the strategy, move it to
        the device. Sets ``model_``, ``device_``, ``horizon_``, ``quantiles_``
        and the parameter counts; training is separate (:meth:`_train`).

        With ``n_ensemble`` > 1, ``model_`` is an
        :class:`~pricetune.nn.model.EnsembleModel` of members built alike from
        their own seeds (the first member's seed is the one a single model
        would get)."""
        from pricetune.nn.model import EnsembleModel, count_patches
        from pricetune.training import resolve_device, resolve_precision

        device = resolve_device(self.device)
        autocast_dtype = resolve_precision(self.precision, device)
        n_patches = count_patches(
            settings.context_length, settings.patch_length, settings.patch_stride
        )
        # an int gives the same seed every time; None a fresh one; a
        # RandomState instance is drawn from, as in scikit-learn
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        seeds = member_seeds(seed, settings.n_ensemble)
        built = [
            self._build_member(
                settings, n_patches, horizon, n_covariate_features, member_seed
            )
            for member_seed in seeds
        ]
        members = [model for model, _ in built]
        model = members[0] if len(members) == 1 else EnsembleModel(members)
        model.to(device)
        self.model_ = model
        self.device_ = device
        self.horizon_ = horizon
        self.quantiles_ = members[0].head.quantiles
        self.interval_scale_ = 1.0
        self.n_parameters_ = sum(p.numel() for p in model.parameters())
        self.n_trainable_parameters_ = sum(
            p.numel() for p in model.parameters() if p.requires_grad
        )
        self._autocast_dtype = autocast_dtype
        # their optional hooks run during training, one per member
        self._strategies = [strategy for _, strategy in built]
        # what the strategy made trainable: each training run (fit, update)
        # starts from it, whatever its hooks froze at the end of the last one
        self._trainable_names = [
            name for name, p in model.named_parameters() if p.requires_grad
        ]
        self._seeds = seeds
        self._seed = seed
        self._n_updates = 0

    def _build_member(
        self, settings: Settings, n_patches, horizon, n_covariate_features, seed
    ):
        """One :class:`~pricetune.nn.model.PatchForecastModel` and its strategy,
        built from the plugins with torch seeded by ``seed``."""
        import torch

        from pricetune.nn.model import PatchForecastModel

        with _TORCH_RNG_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = build_component(
                "backbone",
                self.backbone,
                {"patch_length": settings.patch_length, "n_patches": n_patches},
                settings.backbone_kwargs,
                cls=self._component_class("backbone"),
            )
            head = build_component(
                "head",
                self.head,
                {
                    "hidden_size": backbone.hidden_size,
                    "n_patches": n_patches,
                    "horizon": horizon,
                },
                settings.head_kwargs,
                cls=self._component_class("head"),
            )
            strategy = build_component(
                "strategy",
                self.strategy,
                {},
                settings.strategy_kwargs,
                cls=self._component_class("strategy"),
            )
            model = PatchForecastModel(
                backbone,
                head,
                context_length=settings.context_length,
                patch_length=settings.patch_length,
                patch_stride=settings.patch_stride,
                normalization=self.normalization,
                horizon=horizon,
                n_covariate_features=n_covariate_features,
            )
            strategy.apply(model)
        return model, strategy

    def _build_and_train(self, settings: Settings, windows, horizon: int) -> None:
        """:meth:`_assemble` the model, then train it on ``windows``
        (sets ``training_history_``)."""
        self._assemble(settings, horizon, windows.n_covariate_features)
        self.training_history_ = self._train(windows)
        self._calibrate_intervals(windows)

    def _calibrate_intervals(self, windows) -> None:
        """With ``calibrate_intervals``, set ``interval_scale_``: the factor on
        the quantiles' distances from the median that minimises the mean
        quantile loss on the validation windows, in units of each window's
        scale (so every series weighs alike), from a grid of 0.25 to 4."""
        if not getattr(self, "calibrate_intervals", False):
            return
        import torch

        from pricetune.backtesting.metrics import pinball_loss

        _, validation = windows.split(float(self.validation_fraction))
        if not len(validation):
            warnings.warn(
                "calibrate_intervals: too few windows to hold any out for "
                "validation; the intervals are left as trained",
                UserWarning,
                stacklevel=4,
            )
            return
        contexts, targets, covariates = windows.batch(validation)
        self.interval_scale_ = 1.0  # the quantiles as trained, not as last scaled
        outputs = np.concatenate(
            [
                self._raw_outputs(
                    contexts[start : start + 1024],
                    None if covariates is None else covariates[start : start + 1024],
                )
                for start in range(0, len(contexts), 1024)
            ]
        )
        with torch.no_grad():
            _, scale = self._members()[0].scaling(
                torch.tensor(contexts, dtype=torch.float32)
            )
        scale = scale.numpy().astype(np.float64)[:, :, None]  # (n, 1, 1)
        median = self._median(outputs)
        spread = ((outputs - median) / scale).reshape(-1, outputs.shape[-1])
        actual = (targets[:, :, None] / scale).reshape(-1)
        centre = (median / scale).reshape(-1, 1)
        factors = np.geomspace(0.25, 4.0, 49)
        losses = [
            pinball_loss(actual, centre + factor * spread, self.quantiles_).mean()
            for factor in factors
        ]
        self.interval_scale_ = float(factors[int(np.argmin(losses))])

    def _members(self) -> list:
        """The trained models: the ensemble's members, or the one model."""
        from pricetune.nn.model import EnsembleModel

        if isinstance(self.model_, EnsembleModel):
            return list(self.model_.members)
        return [self.model_]

    def _train(self, windows):
        """Train ``model_`` (each member in turn) further on ``windows``;
        returns the epoch records (with a ``member`` column for ensembles)."""
        import pandas as pd
        import torch

        from pricetune.components.augmentations import build_augmentations
        from pricetune.training import Trainer, TrainingConfig

        members = self._members()
        trainable = set(self._trainable_names)
        for name, parameter in self.model_.named_parameters():
            parameter.requires_grad_(name in trainable)
        records = []
        for number, (member, strategy, member_seed) in enumerate(
            zip(members, self._strategies, self._seeds, strict=True)
        ):
            suffix = f"member-{number}" if len(members) > 1 else None
            config = TrainingConfig(
                max_epochs=self.max_epochs,
                batch_size=self.batch_size,
                learning_rate=float(self.learning_rate),
                weight_decay=float(self.weight_decay),
                patience=self.patience,
                validation_fraction=float(self.validation_fraction),
                lr_schedule=self.lr_schedule,
                warmup_fraction=float(self.warmup_fraction),
                gradient_clip=(
                    None if self.gradient_clip is None else float(self.gradient_clip)
                ),
                accumulate_batches=int(self.accumulate_batches),
                compile=self.compile,
                augmentations=tuple(build_augmentations(self.augmentations)),
                adversarial_epsilon=float(self.adversarial_epsilon),
                ema_epochs=(
                    None if self.ema_epochs is None else float(self.ema_epochs)
                ),
                checkpoint_dir=self._checkpoint_dir(suffix),
                log_csv=_with_suffix(self.log_csv, suffix),
                tensorboard_dir=self._tensorboard_dir(suffix),
                verbose=int(self.verbose),
                description=f"pricetune {self.backbone}/{self.strategy}"
                + (f" {number + 1}/{len(members)}" if suffix else ""),
                run_id=f"seed={member_seed}/update={self._n_updates}",
            )
            seed = member_seed + self._n_updates
            with _TORCH_RNG_LOCK, torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)  # dropout, augmentations
                generator = torch.Generator().manual_seed(seed)  # shuffling
                trainer = Trainer(config, self.device_, self._autocast_dtype)
                history = trainer.fit(member, windows, generator, strategy=strategy)
            for record in history:
                records.append({"member": number, **record} if suffix else record)
        return pd.DataFrame(records)

    def _run_dir(self, root, member: str | None = None) -> str | None:
        """``root`` for ``fit``; a sub-folder per ``update``, and one per
        ensemble member inside it."""
        if root is None:
            return None
        parts = [str(root)]
        if self._n_updates:
            parts.append(f"update-{self._n_updates}")
        if member is not None:
            parts.append(member)
        return os.path.join(*parts)

    def _checkpoint_dir(self, member: str | None = None) -> str | None:
        return self._run_dir(self.checkpoint_dir, member)

    def _tensorboard_dir(self, member: str | None = None) -> str | None:
        return self._run_dir(self.tensorboard_dir, member)

    def _raw_outputs(
        self, contexts: np.ndarray, covariates=None, denormalise: bool = True
    ) -> np.ndarray:
        """The model's forecast values (its head's :meth:`to_quantiles`) in
        the data's units: ``(n, horizon, len(quantiles_) or 1)``; with
        ``denormalise=False``, in the model's normalised units (a
        classifier's log-odds)."""
        import torch

        def tensor(array):
            if array is None:
                return None
            return torch.tensor(array, dtype=torch.float32, device=self.device_)

        from pricetune.nn.quantiles import mixture_quantiles

        context = tensor(np.atleast_2d(contexts))
        members = []
        for model in self._members():
            model.eval()
            # float32 even after bf16 training: on an H200, bf16 moved
            # forecasts by up to 1% for no gain in a latency-bound call
            with torch.no_grad():
                output = model.head.to_quantiles(model(context, tensor(covariates)))
            output = output.float()
            if denormalise:
                loc, scale = model.scaling(context)
                output = output * scale[..., None] + loc[..., None]
            members.append(output.cpu().numpy().astype(np.float64))
        if len(members) == 1:
            return self._scaled_intervals(members[0], denormalise)
        stacked = np.stack(members)  # (members, n, horizon, n_values)
        if self.quantiles_ is None:  # point forecasts: their mean
            return stacked.mean(axis=0)
        _, n, steps, n_levels = stacked.shape
        mixed = mixture_quantiles(
            self.quantiles_, stacked.reshape(len(members), n * steps, n_levels)
        )
        return self._scaled_intervals(mixed.reshape(n, steps, n_levels), denormalise)

    def _scaled_intervals(self, outputs: np.ndarray, denormalise: bool) -> np.ndarray:
        """``outputs`` with each quantile's distance from the median times
        ``interval_scale_`` (see ``calibrate_intervals``)."""
        factor = getattr(self, "interval_scale_", 1.0)
        if factor == 1.0 or self.quantiles_ is None or not denormalise:
            return outputs
        median = self._median(outputs)
        return median + factor * (outputs - median)

    def _median(self, outputs: np.ndarray) -> np.ndarray:
        """The median of quantile outputs ``(n, steps, n_levels)``:
        ``(n, steps, 1)``."""
        from pricetune.nn.quantiles import interpolate_quantiles

        n, steps, n_levels = outputs.shape
        flat = outputs.reshape(n * steps, n_levels)
        return interpolate_quantiles(self.quantiles_, flat, [0.5]).reshape(n, steps, 1)

    def _quantiles_from(self, outputs: np.ndarray, alpha) -> np.ndarray:
        """Quantiles at levels ``alpha`` from one sample's outputs
        ``(steps, n_outputs)``; for a point head, ``alpha`` must be [0.5]."""
        from pricetune.nn.quantiles import interpolate_quantiles

        if self.quantiles_ is None:
            return outputs[:, :1]
        return interpolate_quantiles(self.quantiles_, outputs, alpha)
