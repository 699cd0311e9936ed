"""The pinball (quantile) loss, for torch tensors and numpy arrays alike.

It is written once, here: :class:`~pricetune.components.heads.QuantileHead`
trains with it (on tensors), and the backtest's metrics
(:func:`pricetune.backtesting.metrics.pinball_loss`) and the interval
calibration score forecasts with it (on arrays).

This module imports numpy only: the numpy-only backtesting metrics import it,
and ``import pricetune`` must not import torch.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["pinball_loss"]


def _is_torch_tensor(value) -> bool:
    """Whether ``value`` is a torch tensor, told apart without importing torch:
    ``torch.Tensor`` (and ``nn.Parameter``, ...) are defined in ``torch`` or
    one of its sub-modules, numpy arrays and Python numbers are not."""
    return type(value).__module__.partition(".")[0] == "torch"


def pinball_loss(target, prediction, levels):
    """Elementwise pinball losses ``max(q e, (q - 1) e)``, ``e = target -
    prediction``, for each quantile level ``q``.

    Parameters
    ----------
    target : torch.Tensor or array-like
        the actual values: ``prediction``'s shape without the last axis.
    prediction : torch.Tensor or array-like
        quantile forecasts, ``(..., n_levels)``.
    levels : torch.Tensor or array-like
        the quantile levels, ``(n_levels,)``.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        the losses, with ``prediction``'s shape (no mean is taken): a tensor
        when ``target`` or ``prediction`` is a torch tensor (gradients flow
        through it), else a numpy array.

    Notes
    -----
    Tensors go through ``torch.maximum``, arrays through ``np.maximum``, so
    the numbers are the ones of the usual formula, bit for bit. With tensors,
    ``levels`` may be a sequence of floats; it is then put on the
    prediction's dtype and device.

    Examples
    --------
    >>> pinball_loss(np.array([3.0]), np.array([[1.0, 4.0]]), np.array([0.2, 0.8]))
    array([[0.4, 0.2]])
    """
    if _is_torch_tensor(target) or _is_torch_tensor(prediction):
        # a tensor exists, so torch is imported already: use it without an
        # import statement here (this module must stay importable without it)
        maximum = sys.modules["torch"].maximum
        error = target[..., None] - prediction
        if not _is_torch_tensor(levels):
            levels = error.new_tensor(levels)
    else:
        maximum = np.maximum
        target, prediction, levels = (
            np.asarray(value) for value in (target, prediction, levels)
        )
        error = target[..., None] - prediction
    return maximum(levels * error, (levels - 1.0) * error)
