"""int8 weights for an exported graph: onnxruntime's dynamic quantisation."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pricetune.export.dependencies import require


def quantize_int8(source, target) -> Path:
    """Quantise the weights of ``source``'s matrix products (MatMul, Gemm,
    and the recurrent layers onnxruntime knows) to signed int8 with
    onnxruntime's ``quantize_dynamic``; activations are quantised on the fly
    at each call. ``target`` may be ``source``.

    The graph first goes through onnxruntime's ``quant_pre_process`` (shape
    inference and graph optimisation, which onnxruntime recommends before
    quantising: it lets more matrix products be quantised); a graph that
    step cannot handle is quantised as it is.

    Parameters
    ----------
    source, target : str or path-like
        ONNX files.

    Returns
    -------
    pathlib.Path
        ``target``.
    """
    quantization = require("onnxruntime.quantization")
    require("onnxruntime.quantization.shape_inference")
    source, target = Path(source), Path(target)
    scratch, prepared = _scratch(target.parent), _scratch(target.parent)
    try:
        try:
            quantization.shape_inference.quant_pre_process(source, prepared)
        except Exception:  # noqa: BLE001 - an optional step; quantise as it is
            prepared = source
        quantization.quantize_dynamic(
            prepared, scratch, weight_type=quantization.QuantType.QInt8
        )
        scratch.replace(target)
    finally:
        scratch.unlink(missing_ok=True)
        if prepared != source:
            prepared.unlink(missing_ok=True)
    return target


def _scratch(directory: Path) -> Path:
    """A new empty ``.onnx`` file in ``directory``."""
    handle, name = tempfile.mkstemp(suffix=".onnx", dir=directory)
    os.close(handle)
    return Path(name)
