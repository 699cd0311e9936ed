"""What the estimators that take ready-made windows as rows of ``X`` share
(:class:`~pricetune.FineTunedPriceRegressor` and
:class:`~pricetune.FineTunedPriceDirectionClassifier`): reading the
past-value and covariate columns, fitting on the rows, predicting in
fixed-size passes, their fitted state for saving, and pickling."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from pricetune.data.checks import check_computable
from pricetune.data.scaling import Standardiser
from pricetune.data.windows import Windows
from pricetune.estimators.fine_tuning import FineTuningMixin, with_missing_fitted_state
from pricetune.estimators.linear_baseline import LinearBaseline
from pricetune.estimators.parameters import with_missing_parameters
from pricetune.training.config import TrainingConfig, integer

# rows per forward pass in predict. Every pass has exactly this many rows
# (the last one padded), so that a row's prediction never depends on the
# rows predicted with it: float32 matrix products round differently with
# the number of rows.
_PREDICT_BATCH = 64
#: the most columns of X a safe save may claim (its stand-in rows are
#: allocated from the number before the weights are read)
MAX_FEATURES = 10_000_000

#: the row estimators' defaults and docs where they differ from the forecaster's
ROW_DEFAULTS = {"context_length": None, "patch_length": 8}
ROW_DOCS = {
    "context_length": (
        "int, optional",
        """number of leading columns of ``X`` that are past values (oldest
first, newest last); the remaining columns are covariates. Default
None: every column is a past value.""",
    ),
    "patch_length": (
        "int",
        """values per patch (token). When it exceeds the number of past-value
columns it is clipped to that number (so a single past column gives
patches of length 1); ``patch_length_`` is the length used.""",
    ),
    "patch_stride": (
        "int, optional",
        "step between patches; default ``max(1, patch_length_ // 2)``.",
    ),
    "validation_fraction": (
        "float",
        """share of the rows, taken from the end, held out for early stopping
(0 turns validation and early stopping off); see above.""",
    ),
}


class WindowRowsMixin(FineTuningMixin):
    """Rows of ``X``: ``context_length`` past values (oldest first), then
    covariates. Sets ``context_length_``, ``patch_length_`` and the
    covariates' scaling in :meth:`_fit_rows`."""

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "training_history_")

    # ------------------------------------------------------------------ fit
    def _row_config(self, n_features: int) -> tuple[TrainingConfig, int]:
        """The settings for ``X`` with ``n_features`` columns, and the
        number of its past-value columns. A single past value is read as a
        flat window of two; ``patch_length`` is clipped to the past values."""
        if self.context_length is None:
            n_past = n_features
        else:
            n_past = integer(1)("context_length", self.context_length)
            if n_past > n_features:
                raise ValueError(
                    f"context_length={n_past}, but X has only {n_features} "
                    "feature(s); the first context_length columns must be "
                    "past values"
                )
        patch_length = min(integer(1)("patch_length", self.patch_length), n_past)
        config = self._training_config(
            context_length=max(n_past, 2), patch_length=patch_length
        )
        return config, n_past

    def _contexts(self, X: np.ndarray) -> np.ndarray:
        """The past-value columns of ``X``, as the model reads them."""
        if self.context_length_ == 1:
            return np.repeat(X[:, :1], 2, axis=1)
        return X[:, : self.context_length_]

    def _covariates(self, X: np.ndarray) -> np.ndarray | None:
        """The covariate columns of ``X``, standardised: ``(n, n_covariates)``."""
        if X.shape[1] == self.context_length_:
            return None
        return self._covariate_scaling.transform(X[:, self.context_length_ :])

    def _fit_rows(
        self, X: np.ndarray, targets: np.ndarray, config: TrainingConfig, n_past: int
    ) -> None:
        """Fit on the rows of the validated ``X`` and ``targets`` ``(n, h)``,
        in raw units (the model reads them relative to each row), with the
        settings of :meth:`_row_config`."""
        self.context_length_ = n_past
        self.patch_length_ = config.patch_length
        self._covariate_scaling = None
        self._baseline = None
        covariates = None
        if X.shape[1] > n_past:
            self._covariate_scaling = Standardiser.fit(X[:, n_past:])
            covariates = self._covariates(X)[:, None, :]
        contexts = self._contexts(X)
        check_computable(contexts, "X (its past-value columns)")
        check_computable(targets, "y")
        windows = Windows(contexts, targets, covariates)

        def less_baseline(windows: Windows) -> Windows:
            # the baseline sees the training rows only, so that early
            # stopping and interval calibration still judge on unseen rows;
            # the network then learns, relative to each row, what it leaves
            train, _ = windows.split(config.validation_fraction)
            self._baseline = LinearBaseline.fit(X[train], targets[train])
            shift = self._baseline_shift(X, contexts)
            return Windows(contexts, targets - shift, covariates)

        prepare = less_baseline if config.linear_baseline else None
        self._fit_model(config, windows, targets.shape[1], prepare)

    def _baseline_shift(self, X: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        """``(n, n_outputs)``: the linear baseline's values for the rows of
        ``X`` less each row's location (the network's outputs are relative
        to it), so that the network's outputs plus this are predictions.
        ``contexts`` are the past values of ``X`` (:meth:`_contexts`)."""
        import torch

        context = torch.tensor(contexts, dtype=torch.float32, device=self.device_)
        loc, _ = self._members()[0].scaling(context)
        return self._baseline.predict(X) - loc.double().cpu().numpy()

    def _outputs(self, X, denormalise: bool = True) -> np.ndarray:
        """The model's outputs for ``X``: ``(n_samples, horizon_, n_levels)``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        contexts, covariates = self._contexts(X), self._covariates(X)
        check_computable(contexts, "X (its past-value columns)")
        rows = np.arange(len(X) + (-len(X) % _PREDICT_BATCH)) % len(X)
        outputs = [
            self._raw_outputs(
                contexts[batch],
                None if covariates is None else covariates[batch],
                denormalise,
            )
            for batch in rows.reshape(-1, _PREDICT_BATCH)
        ]
        outputs = np.concatenate(outputs)[: len(X)]
        if getattr(self, "_baseline", None) is not None and denormalise:
            outputs = outputs + self._baseline_shift(X, contexts)[:, :, None]
        return outputs

    # ---------------------------------------------------------- persistence
    def save(self, path):
        """Save the fitted estimator in the safe format and return the directory.

        ``path`` becomes a directory holding ``model.safetensors`` and
        ``pricetune.json``, which :meth:`load` reads without unpickling
        anything (see :func:`pricetune.persistence.save`). Pickle or joblib
        the estimator instead to keep parameters JSON cannot hold (e.g. a
        ``RandomState`` instance as ``random_state``).
        """
        from pricetune.persistence import save

        return save(self, path)

    @classmethod
    def load(cls, path, *, device=None):
        """Load an estimator saved with :meth:`save`, without unpickling
        anything; ``device`` overrides the saved ``device`` parameter. See
        :func:`pricetune.persistence.load`."""
        from pricetune.persistence import load

        return load(path, device=device, expected=cls)

    def _fitted_state(self) -> dict:
        """What the safe format stores beyond the parameters and the model:
        the number and names of the columns of X seen in ``fit``, how many
        are past values, the patch length used, the covariates' scaling and
        whether y was 1-D. The rows of X are not kept (the estimator does
        not keep them either)."""
        from pricetune.persistence.codec import json_label

        names = getattr(self, "feature_names_in_", None)
        scaling = self._covariate_scaling
        return {
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": None
            if names is None
            else [json_label(name, "a column name of X") for name in names],
            "context_length": int(self.context_length_),
            "patch_length": int(self.patch_length_),
            "y_ndim": int(self._y_ndim),
            "covariates": None if scaling is None else scaling.to_json(),
            "baseline": None if self._baseline is None else self._baseline.to_json(),
        }

    def _restore_fitted(self, fitted: dict, model_state: dict, weights) -> None:
        """Rebuild the model and the state :meth:`_fitted_state` saved."""
        from pricetune.persistence.errors import PersistenceError

        # as in fit: the parameters resolved for X's number of columns
        config, n_past = self._row_config(fitted["n_features_in"])
        saved = (fitted["context_length"], fitted["patch_length"])
        if (n_past, config.patch_length) != saved:
            raise PersistenceError(
                f"the saved context_length_ and patch_length_ {saved} differ from "
                f"{(n_past, config.patch_length)}, which the saved parameters "
                f"give for {fitted['n_features_in']} columns: the save is corrupt"
            )
        n_covariates = fitted["n_features_in"] - fitted["context_length"]
        covariates = fitted["covariates"]
        try:
            scaling = None if covariates is None else Standardiser.from_json(covariates)
        except ValueError as error:
            raise PersistenceError(
                f"the saved covariate scaling is malformed ({error}): the save is "
                "corrupt"
            ) from error
        if (scaling is None) != (n_covariates == 0) or (
            scaling is not None and scaling.n_columns != n_covariates
        ):
            raise PersistenceError(
                f"the saved covariate scaling does not fit {n_covariates} "
                "covariate column(s): the save is corrupt"
            )
        if fitted["y_ndim"] not in (1, 2):
            raise PersistenceError(f"y_ndim={fitted['y_ndim']!r} is not 1 or 2")
        self._restore_model(config, model_state, weights)
        self.context_length_ = fitted["context_length"]
        self.patch_length_ = fitted["patch_length"]
        self._y_ndim = fitted["y_ndim"]
        self._covariate_scaling = scaling
        self._baseline = self._saved_baseline(config, fitted, model_state)

    @staticmethod
    def _saved_baseline(config, fitted: dict, model_state: dict):
        """The linear baseline of a save (None without one; saves written
        before it existed have none), checked against the saved columns
        and outputs and against ``linear_baseline``."""
        from pricetune.persistence.errors import PersistenceError

        saved = fitted.get("baseline")
        if (saved is not None) != config.linear_baseline:
            raise PersistenceError(
                f"linear_baseline={config.linear_baseline} but the save "
                + ("holds" if saved is not None else "lacks")
                + " a linear baseline: the save is corrupt"
            )
        if saved is None:
            return None
        try:
            return LinearBaseline.from_json(
                saved, fitted["n_features_in"], model_state["horizon"]
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PersistenceError(
                f"the saved linear baseline is malformed ({error}): the save is corrupt"
            ) from error

    def _stand_in_rows(self, fitted: dict, n_rows: int):
        """``n_rows`` rows of zeros with the saved columns of X: ``fit`` on
        them rebuilds scikit-learn's fitted state (``n_features_in_``,
        ``feature_names_in_``); the restore hook replaces training."""
        import pandas as pd

        from pricetune.persistence.errors import PersistenceError

        n_features = fitted["n_features_in"]
        names = fitted["feature_names_in"]
        # checked before the stand-in rows are allocated from it
        if type(n_features) is not int or not 1 <= n_features <= MAX_FEATURES:
            raise PersistenceError(
                f"the saved n_features_in={n_features!r} is not a number of columns "
                f"from 1 to {MAX_FEATURES:,}: the save is corrupt"
            )
        if names is not None and len(names) != n_features:
            raise PersistenceError(
                f"the save names {len(names)} columns of X but n_features_in is "
                f"{n_features}: the save is corrupt"
            )
        X = np.zeros((n_rows, n_features))
        return X if names is None else pd.DataFrame(X, columns=list(names))

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        # a model on a GPU is pickled from a CPU copy, so it unpickles anywhere
        from pricetune.persistence.pickling import pickle_state

        return pickle_state(self, super().__getstate__())

    def __setstate__(self, state):
        from pricetune.persistence.pickling import restore_device

        if "_covariate_loc" in state:  # pickled by pricetune 0.1.0
            state = dict(state)
            state["_covariate_scaling"] = Standardiser(
                state.pop("_covariate_loc"), state.pop("_covariate_scale")
            )
        state.setdefault("_covariate_scaling", None)
        state.setdefault("_baseline", None)  # pickled before linear_baseline
        state = with_missing_fitted_state(with_missing_parameters(type(self), state))
        super().__setstate__(state)
        restore_device(self)
