"""Optional dependencies: import one, or fail with a one-line error that
says which extra to install."""

from __future__ import annotations

import importlib


def require(module: str, extra: str, needed_by: str):
    """The module ``module`` (e.g. ``"mlflow"``), imported.

    Parameters
    ----------
    module : str
        the module to import.
    extra : str
        the extra of pricetune that installs it (``pip install
        'pricetune[extra]'``).
    needed_by : str
        what needs it, for the message (e.g. ``"MLflowLogger"``).

    Raises
    ------
    ImportError
        ``module`` is not installed (or cannot be imported); one line that
        names the ``pip install`` command.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{needed_by} needs {module.partition('.')[0]}, which is not "
            f"installed: pip install 'pricetune[{extra}]'"
        ) from error


def require_mlflow(needed_by: str):
    """``mlflow``, imported; a one-line :class:`ImportError` naming
    ``pip install 'pricetune[mlflow]'`` when it is missing."""
    return require("mlflow", "mlflow", needed_by)
