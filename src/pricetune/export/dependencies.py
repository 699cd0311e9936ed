"""The optional packages of :mod:`pricetune.export` (onnx, onnxruntime,
onnxscript), imported when first needed, with the one-line error of
:func:`pricetune.integrations.optional.require` naming the extra."""

from __future__ import annotations

from pricetune.integrations.optional import require as _require


def require(module: str):
    """``module`` imported (a dotted name, such as ``"onnxruntime"``), or a
    one-line :class:`ImportError` naming ``pip install 'pricetune[onnx]'``."""
    return _require(module, "onnx", "ONNX export")
