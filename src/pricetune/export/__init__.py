"""ONNX export of a fitted forecaster, and a runtime without torch.

:func:`export_onnx` writes the network with its normalisation (raw prices
in, forecasts in price units out), optionally with int8 weights;
:class:`OnnxForecaster` runs the file with onnxruntime alone. One module a
job: :mod:`~pricetune.export.onnx_export` (the export and its check),
:mod:`~pricetune.export.graph` (the exported module),
:mod:`~pricetune.export.quantization` (int8),
:mod:`~pricetune.export.metadata` (the JSON description),
:mod:`~pricetune.export.histories` (history to context windows) and
:mod:`~pricetune.export.runtime`. onnx, onnxruntime and onnxscript are
optional (``pip install 'pricetune[onnx]'``) and load when first used;
torch loads only to export.
"""

from pricetune.export.onnx_export import export_onnx
from pricetune.export.runtime import OnnxForecaster

__all__ = ["OnnxForecaster", "export_onnx"]
