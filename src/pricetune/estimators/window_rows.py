"""What the estimators that take ready-made windows as rows of ``X`` share
(:class:`~pricetune.FineTunedPriceRegressor` and
:class:`~pricetune.FineTunedPriceDirectionClassifier`): reading the
past-value and covariate columns, fitting on the rows, predicting in
fixed-size passes, saving and pickling."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from pricetune.data.windows import Windows
from pricetune.estimators.fine_tuning import FineTuningMixin, Settings, check_int

# rows per forward pass in predict. Every pass has exactly this many rows
# (the last one padded), so that a row's prediction never depends on the
# rows predicted with it: float32 matrix products round differently with
# the number of rows.
_PREDICT_BATCH = 64


class WindowRowsMixin(FineTuningMixin):
    """Rows of ``X``: ``context_length`` past values (oldest first), then
    covariates. Sets ``context_length_``, ``patch_length_`` and the
    covariates' scaling in :meth:`_fit_rows`."""

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "training_history_")

    # ------------------------------------------------------------------ fit
    def _resolve_settings(self, n_features: int) -> tuple[Settings, int]:
        """The checked settings for ``X`` with ``n_features`` columns, and
        the number of past-value columns."""
        if self.context_length is None:
            n_past = n_features
        else:
            n_past = check_int("context_length", self.context_length, 1)
            if n_past > n_features:
                raise ValueError(
                    f"context_length={n_past}, but X has only {n_features} "
                    "feature(s); the first context_length columns must be "
                    "past values"
                )
        patch_length = min(check_int("patch_length", self.patch_length, 1), n_past)
        # The shared checks read the parameters from the estimator; give them
        # a fresh one holding the resolved values (this one is left as is).
        # A single past value is read as a flat window of two.
        resolved = type(self)(
            **{
                **self.get_params(deep=False),
                "context_length": max(n_past, 2),
                "patch_length": patch_length,
            }
        )
        return resolved._check_settings(), n_past

    def _contexts(self, X: np.ndarray) -> np.ndarray:
        """The past-value columns of ``X``, as the model reads them."""
        if self.context_length_ == 1:
            return np.repeat(X[:, :1], 2, axis=1)
        return X[:, : self.context_length_]

    def _covariates(self, X: np.ndarray) -> np.ndarray | None:
        """The covariate columns of ``X``, standardised: ``(n, n_covariates)``."""
        if X.shape[1] == self.context_length_:
            return None
        return (X[:, self.context_length_ :] - self._covariate_loc) / (
            self._covariate_scale
        )

    def _fit_rows(self, X: np.ndarray, targets: np.ndarray) -> None:
        """Fit on the rows of the validated ``X`` and ``targets`` ``(n, h)``,
        in raw units (the model reads them relative to each row)."""
        settings, n_past = self._resolve_settings(X.shape[1])
        self.context_length_ = n_past
        self.patch_length_ = settings.patch_length
        covariates = None
        if X.shape[1] > n_past:
            raw = X[:, n_past:]
            spread = raw.std(axis=0)
            self._covariate_loc = raw.mean(axis=0)
            self._covariate_scale = np.where(spread > 0, spread, 1.0)
            covariates = self._covariates(X)[:, None, :]
        windows = Windows(self._contexts(X), targets, covariates)
        self._build_and_train(settings, windows, targets.shape[1])

    def _outputs(self, X, denormalise: bool = True) -> np.ndarray:
        """The model's outputs for ``X``: ``(n_samples, horizon_, n_levels)``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        contexts, covariates = self._contexts(X), self._covariates(X)
        rows = np.arange(len(X) + (-len(X) % _PREDICT_BATCH)) % len(X)
        outputs = [
            self._raw_outputs(
                contexts[batch],
                None if covariates is None else covariates[batch],
                denormalise,
            )
            for batch in rows.reshape(-1, _PREDICT_BATCH)
        ]
        return np.concatenate(outputs)[: len(X)]

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

    def __getstate__(self):
        # a model on a GPU is pickled from a CPU copy, so it unpickles anywhere
        from pricetune.persistence import pickle_state

        return pickle_state(self, super().__getstate__())

    def __setstate__(self, state):
        from pricetune.persistence import restore_device

        super().__setstate__(state)
        restore_device(self)
