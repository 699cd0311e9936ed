"""``FineTunedPriceRegressor``: pricetune as a scikit-learn regressor."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from pricetune.estimators.parameters import training_parameters
from pricetune.estimators.window_rows import ROW_DEFAULTS, ROW_DOCS, WindowRowsMixin
from pricetune.persistence.restore import pending_restore


@training_parameters(
    # a default-constructed regressor learns plain tabular regressions too
    # (sklearn's check_estimator, issue 18): see linear_baseline.py
    defaults={**ROW_DEFAULTS, "linear_baseline": True},
    # rows of X have no time: no past-only or static columns, and no last
    # value to shrink toward
    exclude=("past_covariates", "static_covariates", "shrinkage"),
    docs={
        **ROW_DOCS,
        "head": (
            "str",
            """"quantile" (probabilistic: enables :meth:`predict_quantiles`;
:meth:`predict` gives the median), "linear", "mlp", "lstm", "gru"
(quantiles unless ``head_kwargs={"quantiles": None}``), "student_t",
or a plugin's name.""",
        ),
        "normalization": (
            '{"last", "mean"}',
            """per-row normalisation of the past values: "last" centres on the
newest value and scales by the mean absolute one-step change; "mean"
is RevIN-style. The network's prediction is made relative to the
window: with ``linear_baseline=False``, adding a constant to every past
value adds it to the prediction. A single
past value has no scale to learn from: the model is then close to
the no-change prediction plus the covariates' effect.""",
        ),
    },
)
class FineTunedPriceRegressor(WindowRowsMixin, RegressorMixin, BaseEstimator):
    """Fine-tune a pretrained backbone on windows of past prices, as a
    scikit-learn regressor.

    Each row of ``X`` is one sample: a window of past values, oldest first
    and newest last, optionally followed by covariate columns. ``y`` is the
    value to predict for each row (1-D, e.g. the next value) or several
    (2-D ``(n_samples, h)``, e.g. the next ``h`` values). The window is
    normalised on its own, cut into patches and passed through a *backbone*
    (a pretrained language model, a recurrent network, or nothing) and a
    *head* that gives every output at once; a *strategy* chooses what
    trains. These are the components of
    :class:`~pricetune.FineTunedPriceForecaster`, which cuts the windows from
    a series itself; the regressor takes them ready-made, so it fits into
    scikit-learn pipelines, model selection and sktime's ``make_reduction``.

    Rows are independent samples: the regressor assumes no order between
    them, except that the validation set for early stopping is the *last*
    ``validation_fraction`` of the rows. With time-ordered rows (as from a
    sliding window over a series) that is a proper time-ordered split; with
    2-D ``y`` of ``h`` columns the ``h - 1`` rows before the validation rows
    are left out of training, so that consecutive windows' targets never
    overlap the validation targets. Shuffle the rows first if they have no
    order and you want a random validation set.

    {parameters}
    Covariates
    ----------
    With ``context_length=L``, columns ``L`` onwards of ``X`` are
    covariates (calendar features, event flags, other prices...). Each is
    standardised with its training mean and standard deviation and acts
    through one linear map, started at zero, that shifts every output (all
    quantiles alike). The shift is learned in the row's normalised units, so
    in price units it is proportional to the row's scale (for
    ``normalization="last"``, the mean absolute one-step change of its past
    values): a covariate's effect grows with the recent volatility.

    Attributes
    ----------
    model_ : torch.nn.Module
        the trained :class:`~pricetune.nn.model.PatchForecastModel` (an
        :class:`~pricetune.nn.model.EnsembleModel` of them when ``n_ensemble`` > 1).
    device_ : torch.device
    n_features_in_ : int
        number of columns of ``X`` seen in ``fit``.
    feature_names_in_ : ndarray of str
        the column names, when ``X`` in ``fit`` had string column names.
    context_length_ : int
        number of past-value columns (the rest are covariates).
    patch_length_ : int
        patch length used (``patch_length``, clipped to ``context_length_``).
    horizon_ : int
        number of outputs: 1 for 1-D ``y``, ``y.shape[1]`` for 2-D ``y``.
    quantiles_ : tuple of float or None
        quantile levels the head predicts.
    interval_scale_ : float
        the factor ``calibrate_intervals=True`` chose (1.0 otherwise).
    conformal_margins_ : ndarray of shape (horizon, n_quantiles) or None
        each quantile level's shift per horizon step, in units of the
        context's scale, that ``calibrate_intervals="conformal"`` chose
        (None otherwise).
    n_parameters_, n_trainable_parameters_ : int
    training_history_ : pandas.DataFrame
        one row per epoch: train and validation loss, seconds.

    Saving
    ------
    ``regressor.save(path)`` writes the safe format (a directory with
    ``model.safetensors`` and ``pricetune.json``) and
    ``FineTunedPriceRegressor.load(path)`` reads it back without unpickling
    anything; pickle and joblib work too (a model fitted on a GPU unpickles
    on a machine without one). Both give bitwise-identical predictions on
    the CPU; see :mod:`pricetune.persistence`.

    Examples
    --------
    >>> import numpy as np
    >>> from pricetune import FineTunedPriceRegressor
    >>> from pricetune.datasets import load_brent
    >>> y = load_brent("monthly").to_numpy()
    >>> windows = np.lib.stride_tricks.sliding_window_view(y, 24 + 1)
    >>> X, target = windows[:, :24], windows[:, 24]   # 24 months -> the next
    >>> regressor = FineTunedPriceRegressor(
    ...     backbone="none", head="quantile", strategy="full",
    ...     max_epochs=3, random_state=0, verbose=0)
    >>> regressor.fit(X[:-12], target[:-12])
    FineTunedPriceRegressor(...)
    >>> regressor.predict(X[-12:]).shape
    (12,)
    >>> regressor.predict_quantiles(X[-12:], quantiles=[0.1, 0.9]).shape
    (12, 2)
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        # an int random_state seeds everything that is random in fit
        tags.non_deterministic = False
        return tags

    def fit(self, X, y):
        """Fine-tune a new model on the rows of ``X`` and targets ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            past values (oldest first, newest last), then any covariates.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        X, y = validate_data(
            self, X, y, dtype=np.float64, multi_output=True, y_numeric=True
        )
        # persistence: load() rebuilds a saved fit through fit() on stand-in
        # data (which set n_features_in_ and feature_names_in_ above);
        # restore() assembles the model, loads the weights and sets the rest
        restore = pending_restore(self)
        if restore is not None:
            restore()
            return self
        targets = y.reshape(len(y), -1)
        if targets.shape[1] < 1:
            raise ValueError("y must have at least one column")
        self._y_ndim = y.ndim
        self._fit_rows(X, targets, *self._row_config(X.shape[1]))
        return self._fit_ended()

    def _refit_from_save(self, fitted: dict) -> None:
        """``fit`` on one stand-in row with the saved columns (see
        :meth:`_stand_in_rows`), inside which the restore hook loads the
        saved model instead of training."""
        y = np.zeros(1) if fitted["y_ndim"] == 1 else np.zeros((1, 1))
        self.fit(self._stand_in_rows(fitted, 1), y)

    # -------------------------------------------------------------- predict
    def predict(self, X):
        """Predict ``y`` for the rows of ``X``: the median for a quantile head.

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_outputs) when ``y``
        in ``fit`` was 2-D.
        """
        values = self._quantiles_from(self._outputs(X), [0.5])[..., 0]
        return values[:, 0] if self._y_ndim == 1 else values

    def predict_quantiles(self, X, quantiles=(0.1, 0.5, 0.9)):
        """Predictive quantiles of ``y`` for the rows of ``X``.

        Levels on the head's grid (``quantiles_``) are read off it; levels
        between grid points are interpolated linearly, and levels beyond the
        grid extend its tails as a normal distribution would. Quantiles never
        cross.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        quantiles : sequence of float, default (0.1, 0.5, 0.9)
            levels in (0, 1).

        Returns
        -------
        ndarray of shape (n_samples, n_quantiles) when ``y`` in ``fit`` was
        1-D, else (n_samples, n_outputs, n_quantiles).
        """
        check_is_fitted(self)
        if self.quantiles_ is None:
            raise NotImplementedError(
                f"head {self.head!r} gives point predictions only; use a "
                "probabilistic head such as 'quantile' for quantiles"
            )
        levels = np.asarray(quantiles, dtype=np.float64)
        if levels.ndim != 1 or levels.size == 0:
            raise ValueError(
                f"quantiles must be a non-empty sequence of levels, got {quantiles!r}"
            )
        if np.any(~((levels > 0) & (levels < 1))):
            raise ValueError(
                f"quantile levels must lie in (0, 1), got {levels.tolist()}"
            )
        values = self._quantiles_from(self._outputs(X), levels)
        return values[:, 0, :] if self._y_ndim == 1 else values
