"""Saving and loading fitted pricetune estimators.

Two ways, with different trade-offs:

* **pickle / joblib** (``joblib.dump(forecaster, "f.joblib")``): everything,
  exactly, in one file. Unpickling runs code named in the file, so only load
  files you trust. A model fitted on a GPU is pickled from a CPU copy (see
  :mod:`pricetune.persistence.pickling`), so it unpickles on machines
  without one.
* **the safe format** (:func:`save` / :func:`load`, also
  ``forecaster.save(path, serialization_format="safetensors")`` /
  ``FineTunedPriceForecaster.load(path)`` and ``regressor.save(path)`` /
  ``FineTunedPriceRegressor.load(path)``): a directory with
  ``model.safetensors`` and ``pricetune.json``; loading never unpickles
  (see :mod:`pricetune.persistence.safe_format`). It stores the tensors
  the fit made, not the frozen pretrained weights: those are recorded by
  source and SHA-256, and checked when the model loads
  (:mod:`pricetune.persistence.weights`).

The package holds one module per job: :mod:`~pricetune.persistence.pickling`,
:mod:`~pricetune.persistence.restore` (rebuilding a fit through ``fit``),
:mod:`~pricetune.persistence.codec` (pandas and parameters as JSON),
:mod:`~pricetune.persistence.weights` (which tensors a save stores, and the
check of the base weights it leaves out) and
:mod:`~pricetune.persistence.safe_format`. Each estimator owns its fitted
state (``_fitted_state``, ``_restore_fitted``, ``_refit_from_save``).
Nothing heavy is imported until used.
"""

from pricetune.persistence.errors import (
    BaseWeightsError,
    MissingComponentError,
    PersistenceError,
    PersistenceWarning,
)
from pricetune.persistence.pickling import cpu_copy, pickle_state, restore_device
from pricetune.persistence.restore import pending_restore
from pricetune.persistence.safe_format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    METADATA_FILE,
    WEIGHTS_FILE,
    load,
    save,
)

__all__ = [
    "BaseWeightsError",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "WEIGHTS_FILE",
    "MissingComponentError",
    "PersistenceError",
    "PersistenceWarning",
    "cpu_copy",
    "load",
    "pending_restore",
    "pickle_state",
    "restore_device",
    "save",
]
