"""``FineTunedPriceDirectionClassifier``: will the price be higher at the
horizon than today? A scikit-learn classifier on windows of past prices."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from pricetune.components.contract import Head
from pricetune.estimators.parameters import training_parameters
from pricetune.estimators.window_rows import ROW_DEFAULTS, ROW_DOCS, WindowRowsMixin
from pricetune.persistence.restore import pending_restore


class DirectionHead(Head):
    """One logit per window: the log-odds that the second class (``up``)
    is the answer. Trained with binary cross-entropy.

    The classifier hands the trainer targets one unit above or below the
    window's last value (``normalization="last"`` centres on it), so the
    sign of the normalised target is the class.

    Parameters
    ----------
    dropout : float, default 0.0
    """

    n_outputs = 1
    quantiles = None

    def __init__(self, *, hidden_size: int, n_patches: int, horizon: int, dropout=0.0):
        super().__init__()
        if horizon != 1:
            raise ValueError(f"the direction head predicts one label, not {horizon}")
        self.dropout = nn.Dropout(float(dropout))
        self.projection = nn.Linear(n_patches * hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        flat = self.dropout(hidden.flatten(start_dim=1))
        return self.projection(flat).unsqueeze(-1)  # (batch, 1, 1)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            prediction[..., 0], (target > 0).to(prediction.dtype)
        )

    def shift(self, prediction: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return prediction + offset.unsqueeze(-1)  # covariates move the log-odds


def direction_rows(prices, context_length: int, horizon: int = 1):
    """Rows for the classifier from one price series.

    Returns ``(X, y)``: ``X[i]`` holds ``context_length`` consecutive prices
    (oldest first) and ``y[i]`` is 1 when the price ``horizon`` steps after
    the last of them is higher than it, else 0. Rows are in time order.
    """
    values = np.asarray(prices, dtype=np.float64).reshape(-1)
    if context_length < 1 or horizon < 1:
        raise ValueError("context_length and horizon must be positive")
    if len(values) < context_length + horizon:
        raise ValueError(
            f"{len(values)} prices give no row of {context_length} past values "
            f"and a label {horizon} step(s) ahead"
        )
    spans = np.lib.stride_tricks.sliding_window_view(values, context_length + horizon)
    X = np.array(spans[:, :context_length])
    y = (spans[:, -1] > spans[:, context_length - 1]).astype(int)
    return X, y


@training_parameters(
    exclude=(
        "head",
        "normalization",
        "calibrate_intervals",
        "linear_baseline",
        "past_covariates",
        "static_covariates",
        "shrinkage",
    ),
    defaults=ROW_DEFAULTS,
    docs={
        **ROW_DOCS,
        "head_kwargs": (
            "dict, optional",
            """``{"dropout": ...}`` for the direction head.""",
        ),
    },
)
class FineTunedPriceDirectionClassifier(
    WindowRowsMixin, ClassifierMixin, BaseEstimator
):
    """Fine-tune a pretrained backbone to say whether a price will rise.

    Each row of ``X`` is a window of past prices, oldest first, optionally
    followed by covariate columns (see ``context_length``), exactly as for
    :class:`~pricetune.FineTunedPriceRegressor`. ``y`` holds two classes;
    the second of the sorted classes (``1``, ``True``, ``"up"``...) is the
    one :meth:`predict_proba`'s second column and :meth:`decision_function`
    score. :func:`direction_rows` makes ``X`` and ``y`` from a price series
    (1 = higher ``horizon`` steps later).

    The backbone and the strategy are the forecaster's; the head is fixed:
    one logit from the backbone's hidden states, trained with binary
    cross-entropy. Windows are normalised by their last value and their
    mean absolute one-step change, as the forecaster's ``"last"``
    normalisation does.

    As a time-series classifier in sktime, wrap it in
    ``sktime.classification.compose.SklearnClassifierPipeline``, which
    flattens each univariate series into a row (see docs/classification.md).

    {parameters}
    Notes
    -----
    The training options are the regressor's. Ensemble members average
    their log-odds. Augmentations must keep the direction of every move
    (``"scaling"``, ``"magnitude_warp"``, or your own with
    ``keeps_direction = True``), and ``adversarial_epsilon`` must be 0:
    both would otherwise flip labels.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    model_, device_, n_features_in_, feature_names_in_, context_length_,
    patch_length_, n_parameters_, n_trainable_parameters_, training_history_
        as for :class:`~pricetune.FineTunedPriceRegressor`.

    Examples
    --------
    >>> from pricetune import FineTunedPriceDirectionClassifier
    >>> from pricetune.estimators.classifier import direction_rows
    >>> from pricetune.datasets import load_brent
    >>> X, y = direction_rows(load_brent("monthly"), context_length=24, horizon=3)
    >>> classifier = FineTunedPriceDirectionClassifier(
    ...     backbone="none", strategy="full", max_epochs=3, random_state=0,
    ...     verbose=0)
    >>> classifier.fit(X[:-12], y[:-12])
    FineTunedPriceDirectionClassifier(...)
    >>> classifier.predict_proba(X[-12:]).shape
    (12, 2)
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.non_deterministic = False
        return tags

    def _fixed_params(self) -> dict:
        # the sign of a target normalised by the last value is its class
        return {"head": DirectionHead, "normalization": "last"}

    def fit(self, X, y):
        """Fine-tune a new model on the rows of ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            past values (oldest first, newest last), then any covariates.
        y : array-like of shape (n_samples,)
            two classes; the second of the sorted classes means "up".

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(
                "Only binary classification is supported (up or down). The type "
                f"of the target is {y_type}."
            )
        classes, encoded = np.unique(y, return_inverse=True)
        config, n_past = self._row_config(X.shape[1])
        _check_direction_safe(config)
        restore = pending_restore(self)
        if restore is not None:
            restore()
            return self
        if len(classes) < 2:
            raise ValueError(
                f"y holds one class only ({classes[0]!r}); the classifier needs "
                "examples of both directions"
            )
        self.classes_ = classes
        # one unit above the window's last value for the second class, one
        # below for the first: normalised by the last value, the sign is the
        # class (DirectionHead's loss reads it)
        last = X[:, n_past - 1]
        targets = (last + np.where(encoded == 1, 1.0, -1.0))[:, None]
        self._y_ndim = 1
        self._fit_rows(X, targets, config, n_past)
        return self._fit_ended()

    # ---------------------------------------------------------- persistence
    def _fitted_state(self) -> dict:
        """The regressor's fitted state and the two classes."""
        from pricetune.persistence.codec import json_label

        return {
            **super()._fitted_state(),
            "classes": [json_label(c, "a class label") for c in self.classes_],
        }

    def _restore_fitted(self, fitted: dict, model_state: dict, weights) -> None:
        from pricetune.persistence.errors import PersistenceError

        classes = fitted.get("classes")
        if not isinstance(classes, list) or len(classes) != 2:
            raise PersistenceError(f"classes={classes!r} is not two labels")
        super()._restore_fitted(fitted, model_state, weights)
        self.classes_ = np.asarray(classes)

    def _refit_from_save(self, fitted: dict) -> None:
        """``fit`` on two stand-in rows labelled with the saved classes,
        inside which the restore hook loads the saved model."""
        self.fit(self._stand_in_rows(fitted, 2), np.asarray(fitted["classes"]))

    def decision_function(self, X):
        """Log-odds of the second class, ``(n_samples,)``."""
        return self._outputs(X, denormalise=False)[:, 0, 0]

    def predict_proba(self, X):
        """Class probabilities ``(n_samples, 2)``, in the order of ``classes_``."""
        up = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - up, up])

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """The more likely class of each row."""
        check_is_fitted(self)
        return self.classes_[(self.decision_function(X) > 0).astype(int)]


def _check_direction_safe(config) -> None:
    """The labels travel as the side of the target relative to the
    window's last value: training options that move that value
    (adversarial steps, most augmentations) would flip them."""
    if config.adversarial_epsilon != 0:
        raise ValueError(
            "adversarial_epsilon must be 0 for the direction classifier: its "
            "perturbed windows move the last price, which flips labels"
        )
    flipping = [
        repr(augmentation)
        for augmentation in config.augmentations
        if not getattr(augmentation, "keeps_direction", False)
    ]
    if flipping:
        raise ValueError(
            f"augmentations {flipping} can move a window's last price past "
            "its label's side; the direction classifier takes only those "
            "with keeps_direction = True (the built-ins 'scaling' and "
            "'magnitude_warp')"
        )
