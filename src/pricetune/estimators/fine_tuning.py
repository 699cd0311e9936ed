"""What the three estimators share: building the model from the plugins,
training it, running it, and saving its state.

:class:`FineTuningMixin` delegates: the settings to
:class:`~pricetune.training.config.TrainingConfig` (built once per ``fit``
or ``update`` from ``get_params()``), the network to
:mod:`pricetune.nn.build`, the loop to
:class:`~pricetune.training.trainer.Trainer` and its callbacks
(:func:`~pricetune.training.callbacks.standard_callbacks`). The data side
(windows of a series, rows of ``X``) belongs to each estimator.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.utils import check_random_state

from pricetune.training.config import TrainingConfig
from pricetune.training.setting_checks import callback_list

#: fitted attributes added since 0.1.0, each with the value that an older
#: pickle, which lacks it, behaves as
LEGACY_FITTED = {"conformal_margins_": None, "shrinkage_": 0.0}


def with_missing_fitted_state(state: dict) -> dict:
    """A fitted estimator's pickled ``state`` with every attribute of
    :data:`LEGACY_FITTED` it lacks (an unfitted one's as it is)."""
    if "model_" not in state:
        return state
    return {**LEGACY_FITTED, **state}


def finite_outputs(outputs: np.ndarray) -> np.ndarray:
    """``outputs``, after checking that the model gave finite values: a
    forecast is never NaN or infinite without an error."""
    bad = ~np.isfinite(outputs)
    if bad.any():
        raise ValueError(
            f"the model gave {int(bad.sum())} non-finite value(s) of "
            f"{bad.size}: its weights or this input are beyond float32's range "
            "(fit again with a lower learning_rate, or rescale the data)"
        )
    return outputs


class FineTuningMixin:
    """Model assembly, training and inference for pricetune's estimators."""

    def _fixed_params(self) -> dict:
        """Settings the estimator fixes rather than takes as parameters (the
        direction classifier's head and normalisation)."""
        return {}

    def _training_config(self, **resolved) -> TrainingConfig:
        """The checked settings of this fit: the parameters, the fixed
        settings, and ``resolved`` (values worked out from the data, such as
        the regressor's context length)."""
        return TrainingConfig.from_params(
            {**self.get_params(deep=False), **self._fixed_params(), **resolved}
        )

    # ------------------------------------------------------------ assembly
    def _assemble(
        self,
        config: TrainingConfig,
        horizon: int,
        n_covariate_features,
        covariate_mask=None,
    ):
        """Build the model from the plugins, apply the strategy, move it to
        the device. Sets ``model_``, ``device_``, ``horizon_``,
        ``quantiles_``, ``interval_scale_`` and the parameter counts;
        training is separate (:meth:`_train`).

        With ``n_ensemble`` > 1, ``model_`` is an
        :class:`~pricetune.nn.model.EnsembleModel` of members built alike from
        their own seeds (the first member's seed is the one a single model
        would get)."""
        from pricetune.nn.build import build_model
        from pricetune.training.devices import resolve_device, resolve_precision

        device = resolve_device(config.device)
        autocast_dtype = resolve_precision(config.precision, device)
        # an int gives the same seed every time; None a fresh one; a
        # RandomState instance is drawn from, as in scikit-learn
        seed = int(check_random_state(config.random_state).randint(2**31 - 1))
        model, strategies, seeds = build_model(
            config, horizon, n_covariate_features, seed, covariate_mask
        )
        model.to(device)
        self.model_ = model
        self.device_ = device
        self.horizon_ = horizon
        self.quantiles_ = self._members()[0].head.quantiles
        self.interval_scale_ = 1.0
        self.conformal_margins_ = None
        self.shrinkage_ = config.shrinkage
        self.n_parameters_ = sum(p.numel() for p in model.parameters())
        self.n_trainable_parameters_ = sum(
            p.numel() for p in model.parameters() if p.requires_grad
        )
        self._autocast_dtype = autocast_dtype
        # their optional hooks run during training, one per member
        self._strategies = strategies
        # what the strategy made trainable: each training run (fit, update)
        # starts from it, whatever its hooks froze at the end of the last one
        self._trainable_names = [
            name for name, p in model.named_parameters() if p.requires_grad
        ]
        self._seeds = seeds
        self._seed = seed
        self._n_updates = 0

    def _check_components(self, windows) -> None:
        """The components' outputs on two real windows, against the contract
        (:func:`~pricetune.nn.forward_contract.check_forward_contract`), in
        eval mode so that no random number is drawn (dropout)."""
        import torch

        from pricetune.nn.forward_contract import check_forward_contract

        contexts, _, _ = windows.batch(np.arange(min(2, len(windows))))
        context = torch.tensor(
            np.asarray(contexts), dtype=torch.float32, device=self.device_
        )
        member = self._members()[0]
        was_training = member.training
        member.eval()
        try:
            check_forward_contract(member, context, self.horizon_)
        finally:
            member.train(was_training)

    def _fit_ended(self):
        """Call each callback's ``on_fit_end`` with this fitted estimator;
        returns it (for ``fit`` to return)."""
        for callback in callback_list("callbacks", self.callbacks):
            callback.on_fit_end(self)
        return self

    def _members(self) -> list:
        """The trained models: the ensemble's members, or the one model."""
        from pricetune.nn.model import EnsembleModel

        if isinstance(self.model_, EnsembleModel):
            return list(self.model_.members)
        return [self.model_]

    # ------------------------------------------------------------ training
    def _fit_model(
        self,
        config: TrainingConfig,
        windows,
        horizon: int,
        prepare=None,
        covariate_mask=None,
    ) -> None:
        """:meth:`_assemble` the model, check its components, then train it
        on ``windows`` (sets ``training_history_``) and calibrate its
        intervals. ``prepare(windows)``, when given, runs once the model is
        built and gives the windows to learn (the regressor's targets less
        its linear baseline); ``covariate_mask``, which covariate values a
        window reads (:func:`pricetune.data.covariate_roles.reading_mask`)."""
        self._assemble(config, horizon, windows.n_covariate_features, covariate_mask)
        self._check_components(windows)
        if prepare is not None:
            windows = prepare(windows)
        self.training_history_ = self._train(config, windows)
        self._calibrate_intervals(config, windows)

    def _continue_training(self, config: TrainingConfig, windows) -> None:
        """``update``: train the current weights further on ``windows``."""
        import pandas as pd

        self._n_updates += 1
        history = self._train(config, windows)
        self._calibrate_intervals(config, windows)
        history.insert(0, "update", self._n_updates)
        self.training_history_ = pd.concat(
            [self.training_history_, history], ignore_index=True
        )

    def _train(self, config: TrainingConfig, windows):
        """Train ``model_`` (each member in turn) further on ``windows``;
        returns the epoch records (with a ``member`` column for ensembles).

        Data-parallel (docs/distributed.md): in a process group of several
        processes (``torchrun``; one is initialised from its environment),
        this process trains its share with the others; else with
        ``n_processes`` > 1, each member trains in that many worker
        processes (:func:`~pricetune.training.launch.train_in_processes`),
        where the callbacks run, and comes back trained."""
        import pandas as pd
        import torch

        from pricetune.nn.build import TORCH_RNG_LOCK
        from pricetune.training import distributed
        from pricetune.training.callbacks import standard_callbacks
        from pricetune.training.trainer import train_member

        distributed.init_from_environment(self.device_)
        rank, world_size = distributed.world()
        if world_size > 1:  # one GPU per process
            device = distributed.process_device(self.device_)
            if device != self.device_:
                self.model_.to(device)
                self.device_ = device
        members = self._members()
        trainable = set(self._trainable_names)
        for name, parameter in self.model_.named_parameters():
            parameter.requires_grad_(name in trainable)
        records = []
        for number, (member, strategy, member_seed) in enumerate(
            zip(members, self._strategies, self._seeds, strict=True)
        ):
            member_number = number if len(members) > 1 else None
            callbacks = standard_callbacks(
                config,
                strategy,
                member=member_number,
                n_members=len(members),
                update=self._n_updates,
                seed=member_seed,
            )
            seed = member_seed + self._n_updates
            run_info = {
                "member": member_number,
                "update": self._n_updates,
                "seed": member_seed,
            }
            if world_size == 1 and config.n_processes > 1:
                from pricetune.training.launch import train_in_processes

                history = train_in_processes(
                    config.n_processes,
                    member,
                    windows,
                    config,
                    strategy=strategy,
                    callbacks=callbacks,
                    seed=seed,
                    device=self.device_,
                    autocast_dtype=self._autocast_dtype,
                    run_info=run_info,
                )
                records.extend(
                    r if member_number is None else {"member": number, **r}
                    for r in history
                )
                continue
            if world_size > 1:  # rank 0's seed: one order of windows for all
                seed = distributed.gather(seed)[0]
            with TORCH_RNG_LOCK, torch.random.fork_rng(devices=[]):
                history = train_member(
                    member,
                    windows,
                    config,
                    self.device_,
                    self._autocast_dtype,
                    seed,
                    rank,
                    strategy=strategy,
                    callbacks=callbacks,
                    **run_info,
                )
            for record in history:
                records.append(
                    record if member_number is None else {"member": number, **record}
                )
        return pd.DataFrame(records)

    def _calibrate_intervals(self, config: TrainingConfig, windows) -> None:
        """With ``calibrate_intervals``, set ``interval_scale_``: the factor on
        the quantiles' distances from the median that minimises the mean
        quantile loss on the validation windows, in units of each window's
        scale (so every series weighs alike), from a grid of 0.25 to 4.
        With ``calibrate_intervals="conformal"``, set ``conformal_margins_``
        from the same windows (:func:`pricetune.nn.conformal.conformal_margins`)."""
        method = config.calibrate_intervals
        if not method:
            return
        import torch

        from pricetune.nn.conformal import conformal_margins
        from pricetune.nn.quantiles import best_interval_scale

        _, validation = windows.split(config.validation_fraction)
        if not len(validation):
            warnings.warn(
                "calibrate_intervals: too few windows to hold any out for "
                "validation; the intervals are left as trained",
                UserWarning,
                stacklevel=4,
            )
            return
        contexts, targets, covariates = windows.batch(validation)
        # the quantiles as trained, not as last calibrated
        self.interval_scale_, self.conformal_margins_ = 1.0, None
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
        if method == "conformal":
            self.conformal_margins_ = conformal_margins(
                self.quantiles_, outputs, targets, scale.numpy()
            )
            return
        self.interval_scale_ = best_interval_scale(
            self.quantiles_, outputs, targets, scale.numpy()
        )

    # ----------------------------------------------------------- inference
    def _raw_outputs(
        self, contexts: np.ndarray, covariates=None, denormalise: bool = True
    ) -> np.ndarray:
        """The model's forecast values (its head's :meth:`to_quantiles`) in
        the data's units, moved toward each context's last value by
        ``shrinkage_``: ``(n, horizon, len(quantiles_) or 1)``; with
        ``denormalise=False``, in the model's normalised units (a
        classifier's log-odds)."""
        import torch

        from pricetune.nn.quantiles import mixture_quantiles

        def tensor(array):
            if array is None:
                return None
            return torch.tensor(array, dtype=torch.float32, device=self.device_)

        context = tensor(np.atleast_2d(contexts))
        members = []
        for model in self._members():
            model.eval()
            # float32 even after bf16 training: on an H200, bf16 moved
            # forecasts by up to 1% for no gain in a latency-bound call
            with torch.no_grad():
                output = model.head.to_quantiles(model(context, tensor(covariates)))
                loc, scale = model.scaling(context)  # the members' alike
            output = output.float()
            if denormalise:
                output = output * scale[..., None] + loc[..., None]
            members.append(finite_outputs(output.cpu().numpy().astype(np.float64)))
        scale = scale.float().cpu().numpy()
        if len(members) == 1:
            outputs = members[0]
        elif self.quantiles_ is None:  # point forecasts: their mean
            outputs = np.stack(members).mean(axis=0)
        else:
            stacked = np.stack(members)  # (members, n, horizon, n_values)
            _, n, steps, n_levels = stacked.shape
            mixed = mixture_quantiles(
                self.quantiles_, stacked.reshape(len(members), n * steps, n_levels)
            )
            outputs = mixed.reshape(n, steps, n_levels)
        if denormalise:
            last = np.atleast_2d(contexts)[:, -1].astype(np.float64)
            outputs = self._shrunk(outputs, last)
        return self._scaled_intervals(outputs, denormalise, scale)

    def _shrunk(self, outputs: np.ndarray, last: np.ndarray) -> np.ndarray:
        """``outputs`` ``(n, horizon, n_values)`` moved ``shrinkage_`` of the
        way from their median to ``last`` (each context's last value), all
        values alike (see ``shrinkage``)."""
        if self.shrinkage_ == 0.0:
            return outputs
        median = self._quantiles_from(outputs, [0.5])
        return outputs + self.shrinkage_ * (last[:, None, None] - median)

    def _scaled_intervals(
        self, outputs: np.ndarray, denormalise: bool, scale: np.ndarray
    ) -> np.ndarray:
        """``outputs`` with each quantile's distance from the median times
        ``interval_scale_`` (see ``calibrate_intervals``), or shifted by
        ``conformal_margins_`` times each window's ``scale`` (see
        ``calibrate_intervals="conformal"``)."""
        if self.quantiles_ is None or not denormalise:
            return outputs
        margins = self.conformal_margins_
        if margins is not None:
            from pricetune.nn.conformal import apply_margins

            return apply_margins(self.quantiles_, outputs, margins, scale)
        factor = self.interval_scale_
        if factor == 1.0:
            return outputs
        median = self._quantiles_from(outputs, [0.5])
        return median + factor * (outputs - median)

    def _quantiles_from(self, outputs: np.ndarray, alpha) -> np.ndarray:
        """Quantiles at levels ``alpha`` of outputs ``(..., n_outputs)``:
        ``(..., len(alpha))``; a point head's one output (``alpha`` must
        then be [0.5])."""
        from pricetune.nn.quantiles import interpolate_quantiles

        if self.quantiles_ is None:
            return outputs[..., :1]
        flat = outputs.reshape(-1, outputs.shape[-1])
        values = interpolate_quantiles(self.quantiles_, flat, alpha)
        return values.reshape(*outputs.shape[:-1], -1)

    # --------------------------------------------------------- persistence
    def _model_state(self) -> dict:
        """The model's part of a safe-format save (JSON; the weights go to
        ``model.safetensors``)."""
        from pricetune.persistence.codec import encode_frame, floats

        effect = getattr(self.model_, "covariate_effect", None)
        history = getattr(self, "training_history_", None)
        return {
            "horizon": int(self.horizon_),
            "n_covariate_features": 0 if effect is None else int(effect.in_features),
            "seed": int(self._seed),
            "n_updates": int(self._n_updates),
            "quantiles": None if self.quantiles_ is None else floats(self.quantiles_),
            "n_parameters": int(self.n_parameters_),
            "interval_scale": float(self.interval_scale_),
            "conformal_margins": None
            if self.conformal_margins_ is None
            else floats(self.conformal_margins_),
            "training_history": None if history is None else encode_frame(history),
        }

    def _restore_model(
        self, config: TrainingConfig, state: dict, weights, covariate_mask=None
    ) -> None:
        """Assemble the model :meth:`_model_state` describes (no training)
        and load the saved ``weights`` into it, strictly (a full file of a
        version 1 save, or the trained tensors over the checked base ones:
        :func:`pricetune.persistence.weights.load_weights`)."""
        from pricetune.nn.build import build_model, member_seeds
        from pricetune.persistence.codec import decode_frame
        from pricetune.persistence.weight_checks import check_before_building
        from pricetune.persistence.weights import load_weights

        horizon, n_features = state["horizon"], state["n_covariate_features"]
        check_before_building(
            lambda: build_model(
                config, horizon, n_features, state["seed"], covariate_mask
            )[0],
            weights,
        )
        self._assemble(config, horizon, n_features, covariate_mask)
        load_weights(self.model_, weights)
        self._seed = state["seed"]
        self._seeds = member_seeds(self._seed, len(self._seeds))
        self._n_updates = state["n_updates"]
        self.interval_scale_ = float(state.get("interval_scale", 1.0))
        self.conformal_margins_ = _saved_margins(
            state.get("conformal_margins"), self.horizon_, self.quantiles_
        )
        history = state.get("training_history")
        if history is not None:
            self.training_history_ = decode_frame(history)


def _saved_margins(margins, horizon: int, quantiles) -> np.ndarray | None:
    """The ``conformal_margins_`` of a safe save, checked against the model."""
    if margins is None:
        return None
    from pricetune.persistence.errors import PersistenceError

    shape = (horizon, 0 if quantiles is None else len(quantiles))
    try:
        array = np.asarray(margins, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != shape or not np.isfinite(array).all():
        raise PersistenceError(
            "the saved conformal_margins are not finite numbers of shape "
            f"{shape} (horizon, quantile levels): the save is corrupt"
        )
    return array
