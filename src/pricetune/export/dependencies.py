"""The optional packages of :mod:`pricetune.export`, imported when first
needed, with a one-line error naming the extra that installs them."""

from __future__ import annotations

import importlib

#: how a user installs what this package needs
INSTALL_HINT = "pip install 'pricetune[onnx]'"


def require(module: str):
    """``module`` imported, or an :class:`ImportError` of one line naming
    :data:`INSTALL_HINT` when it is missing (onnx, onnxruntime, onnxscript).

    Parameters
    ----------
    module : str
        a dotted module name, such as ``"onnxruntime"``.

    Returns
    -------
    module
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"ONNX export and its runtime need the {module.split('.')[0]!r} "
            f"package: {INSTALL_HINT}"
        ) from error
