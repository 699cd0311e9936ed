"""The restore hook: :func:`~pricetune.persistence.safe_format.load` rebuilds
a saved fit through the estimator's own ``fit`` on stand-in data, so that
sktime's or scikit-learn's fitted state (cutoff, horizon, columns...) is
exactly what ``fit`` makes; inside that ``fit``, the hook loads the saved
model and state instead of training."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable

_PENDING: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "pricetune_pending_restore", default=None
)


@contextlib.contextmanager
def restoring(estimator, restore: Callable[[], None]):
    pending = [estimator, restore, False]
    token = _PENDING.set(pending)
    try:
        yield pending
    finally:
        _PENDING.reset(token)


def pending_restore(estimator) -> Callable[[], None] | None:
    """The restore callback :func:`load` set for ``estimator``, or ``None``.

    An estimator's ``_fit`` calls this first (the regressor's ``fit``, once
    scikit-learn has validated the stand-in data); a callback means "this
    fit is :func:`load` rebuilding a saved fit: call it (it assembles the
    model, loads the weights and sets the fitted state) instead of
    training". It is handed out once.
    """
    pending = _PENDING.get()
    if pending is None or pending[0] is not estimator or pending[2]:
        return None
    pending[2] = True
    return pending[1]
