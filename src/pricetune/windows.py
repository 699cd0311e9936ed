"""Training windows cut from a series, without copying it.

A window at position ``i`` pairs the ``context_length`` values from ``i``
with the ``horizon`` values after them, and (optionally) the covariate rows
over both spans. Arrays are strided views of the series; a batch is copied
only when it is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Windows:
    """Aligned training windows.

    contexts : (n, context_length) past values
    targets : (n, horizon) the values to forecast
    covariates : (n, span, n_covariates) or None, flattened per sample when
        drawn; for a series, ``span`` covers the context and the horizon.
    """

    contexts: np.ndarray
    targets: np.ndarray
    covariates: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.contexts)

    @property
    def n_covariate_features(self) -> int:
        if self.covariates is None:
            return 0
        return int(np.prod(self.covariates.shape[1:]))

    def batch(self, indices: np.ndarray):
        """``(contexts, targets, covariates or None)`` for ``indices``, copied."""
        covariates = None
        if self.covariates is not None:
            covariates = self.covariates[indices].reshape(len(indices), -1)
        return self.contexts[indices], self.targets[indices], covariates


def series_windows(
    values: np.ndarray,
    context_length: int,
    horizon: int,
    covariates: np.ndarray | None = None,
) -> Windows:
    """Every window of ``values`` (1-D); ``covariates`` is ``(len(values), C)``."""
    width = context_length + horizon
    spans = np.lib.stride_tricks.sliding_window_view(values, width)
    covariate_spans = None
    if covariates is not None:
        # (n, C, width) -> (n, width, C): time first, like the values
        covariate_spans = np.lib.stride_tricks.sliding_window_view(
            covariates, width, axis=0
        ).transpose(0, 2, 1)
    return Windows(
        spans[:, :context_length], spans[:, context_length:], covariate_spans
    )
