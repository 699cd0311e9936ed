"""Integrations with other tools, each an optional dependency.

* :mod:`~pricetune.integrations.optional`: importing an optional
  dependency, with a one-line error naming the extra to install.
* :mod:`~pricetune.integrations.mlflow_tracking`:
  :class:`~pricetune.integrations.mlflow_tracking.MLflowLogger`, a training
  callback that logs a fit's parameters and per-epoch metrics to MLflow
  (public as ``pricetune.callbacks.MLflowLogger``).
* :mod:`~pricetune.integrations.mlflow_pyfunc`: the MLflow pyfunc model of
  a fitted forecaster (saved, logged and loaded through
  :mod:`pricetune.mlflow`).

Nothing here is imported by ``import pricetune``; each module imports its
tool when first used.
"""
