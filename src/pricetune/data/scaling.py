"""Standardisation of covariate columns, fitted once on the training rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Standardiser:
    """Per-column location and scale: ``(raw - loc) / scale``.

    :meth:`fit` takes the training rows' mean and standard deviation; a
    constant column keeps scale 1, so it passes through centred.
    """

    loc: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, raw: np.ndarray) -> Standardiser:
        """The standardiser of the columns of ``raw`` ``(n, C)``."""
        spread = raw.std(axis=0)
        return cls(raw.mean(axis=0), np.where(spread > 0, spread, 1.0))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.loc) / self.scale

    @property
    def n_columns(self) -> int:
        return len(self.loc)

    def to_json(self) -> dict:
        return {
            "loc": np.asarray(self.loc, dtype=np.float64).tolist(),
            "scale": np.asarray(self.scale, dtype=np.float64).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Standardiser:
        loc = np.asarray(data["loc"], dtype=np.float64)
        scale = np.asarray(data["scale"], dtype=np.float64)
        if loc.ndim != 1 or loc.shape != scale.shape:
            raise ValueError(
                f"a covariate scaling needs one loc and one scale per column, got "
                f"{loc.shape} and {scale.shape}"
            )
        return cls(loc, scale)
