"""The regressor's linear baseline: a ridge regression of the targets on
the standardised columns of ``X``, fitted before the network, which then
learns what the baseline leaves (``linear_baseline=True``).

Why: the network reads each row relative to itself (its last value and
typical move), which suits windows of prices but cannot see a column's
absolute level, so on a plain tabular problem (``y`` a linear function of
the columns) it learned next to nothing in a default fit. With the
baseline the regressor is at least a linear model and the network corrects
it; on price windows the baseline is a linear autoregression and the network
still reads every window relative to itself. The ridge is scikit-learn's
(``RidgeCV``, its penalty chosen by efficient leave-one-out); the fitted
coefficients are kept as plain arrays so that the safe format stores them
as JSON numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pricetune.data.scaling import Standardiser

#: the ridge penalties tried, on standardised columns
ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))


@dataclass(frozen=True)
class LinearBaseline:
    """``targets ~ standardise(X) @ coef.T + intercept``.

    scaling : the columns' :class:`~pricetune.data.scaling.Standardiser`
    coef : ``(n_outputs, n_features)``
    intercept : ``(n_outputs,)``
    """

    scaling: Standardiser
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, targets: np.ndarray) -> LinearBaseline:
        """Fit on the rows of ``X`` ``(n, n_features)`` and ``targets``
        ``(n, n_outputs)``."""
        from sklearn.linear_model import RidgeCV

        scaling = Standardiser.fit(X)
        ridge = RidgeCV(alphas=ALPHAS).fit(scaling.transform(X), targets)
        # C order, as from_json builds them: with RidgeCV's own (for 2-D
        # targets a transposed view) the matrix product takes another BLAS
        # path, and a loaded model's predictions differed in the last bit
        coef = np.ascontiguousarray(
            np.asarray(ridge.coef_, dtype=np.float64).reshape(targets.shape[1], -1)
        )
        intercept = np.ascontiguousarray(ridge.intercept_, dtype=np.float64).reshape(-1)
        return cls(scaling, coef, intercept)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_outputs)`` baseline values for the rows of ``X``."""
        return self.scaling.transform(X) @ self.coef.T + self.intercept

    def to_json(self) -> dict:
        return {
            "scaling": self.scaling.to_json(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict, n_features: int, n_outputs: int) -> LinearBaseline:
        """The baseline ``to_json`` wrote, checked against the estimator's
        ``n_features`` columns and ``n_outputs`` outputs (``ValueError`` when
        a shape or a value is wrong)."""
        scaling = Standardiser.from_json(data["scaling"])
        coef = np.asarray(data["coef"], dtype=np.float64)
        intercept = np.asarray(data["intercept"], dtype=np.float64)
        expected = {
            "scaling": ((scaling.n_columns,), (n_features,)),
            "coef": (coef.shape, (n_outputs, n_features)),
            "intercept": (intercept.shape, (n_outputs,)),
        }
        for name, (found, wanted) in expected.items():
            if found != wanted:
                raise ValueError(f"its {name} has shape {found}, expected {wanted}")
        if not all(np.isfinite(a).all() for a in (coef, intercept, scaling.loc)):
            raise ValueError("it holds a non-finite number")
        return cls(scaling, coef, intercept)
