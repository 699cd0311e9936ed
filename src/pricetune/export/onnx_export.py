"""``export_onnx``: a fitted forecaster's network, with its normalisation,
to an ONNX file that :class:`~pricetune.export.runtime.OnnxForecaster`
runs without torch."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from pricetune.export.dependencies import require
from pricetune.export.metadata import METADATA_KEY, describe, write_sidecar

#: the ONNX opset the export targets by default (the lowest torch's
#: dynamo exporter writes; onnxruntime 1.18 and later run it)
DEFAULT_OPSET = 18
QUANTIZE_CHOICES = (None, "int8")
#: the largest relative difference between the exported graph and the
#: torch model, on the fit's own contexts, that an export accepts
EXPORT_TOLERANCE = 1e-4


def _check_forecaster(forecaster) -> None:
    name = type(forecaster).__name__
    if not (hasattr(forecaster, "_members") and hasattr(forecaster, "cutoff")):
        raise TypeError(f"export_onnx exports a FineTunedPriceForecaster, got {name}")
    if not getattr(forecaster, "is_fitted", False):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(
            f"this {name} is not fitted yet: call fit before export_onnx"
        )
    if forecaster.covariate_names_:
        raise NotImplementedError(
            f"export_onnx does not export a forecaster fitted with X "
            f"({list(forecaster.covariate_names_)}): fit without X to export"
        )


def _check_path(path) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"path: the directory {str(path.parent)!r} does not exist; create it "
            "before export_onnx"
        )
    if path.is_dir():
        raise IsADirectoryError(f"path: {str(path)!r} is a directory, not a file")
    return path


def _example_contexts(forecaster) -> np.ndarray:
    """Real context windows of the fit (two at least: a batch of one would
    fix the exported batch size), float32."""
    store = forecaster._store
    length = int(forecaster.context_length_)
    usable = np.flatnonzero(store.lengths >= length)[:64]
    contexts, _ = store.contexts(length, usable)
    contexts = np.asarray(contexts, dtype=np.float32)
    if len(contexts) < 2:
        # the window before the last, or the last one again
        values = np.asarray(store.values[: store.offsets[1]], dtype=np.float32)
        earlier = values[-length - 1 : -1] if len(values) > length else contexts[0]
        contexts = np.vstack([contexts, earlier[None]])
    return contexts


def _graph(forecaster):
    """The :class:`~pricetune.export.graph.ForecastGraph` of CPU float32
    copies of the forecaster's model (or its ensemble's members), in eval
    mode."""
    from pricetune.export.graph import ForecastGraph, median_weights

    models = [
        copy.deepcopy(member).to("cpu").float().eval()
        for member in forecaster._members()
    ]
    return ForecastGraph(
        models,
        forecaster.interval_scale_,
        median_weights(forecaster.quantiles_),
        margins=forecaster.conformal_margins_,
        levels=forecaster.quantiles_,
        shrinkage=forecaster.shrinkage_,
    ).eval()


def _torch_export(graph, contexts: np.ndarray, target: Path, opset: int, what):
    """Write ``graph`` to ``target`` (one file) with a dynamic batch size.

    torch's dynamo exporter (``torch.export``, then onnxscript) is used
    rather than the TorchScript one: it exports every built-in backbone
    (none, LSTM, GRU, MiniLM with LoRA) and is the one torch develops. An
    export it cannot trace becomes a one-line :class:`NotImplementedError`
    naming ``what``.
    """
    import torch

    from pricetune.export.graph import INPUT_NAME, OUTPUT_NAMES

    example = torch.tensor(contexts)
    try:
        with torch.no_grad(), _quiet():
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"context": {0: torch.export.Dim("batch", min=1)}},
                opset_version=opset,
                verbose=False,
            )
        # one self-contained file (the weights inside, under ONNX's 2 GB)
        program.save(str(target), external_data=False)
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        raise NotImplementedError(
            f"export_onnx could not export {what} to ONNX "
            f"({type(error).__name__}: {first_line})"
        ) from error


@contextlib.contextmanager
def _quiet():
    """The exporter without its notes on the terminal: which optional
    torchvision operators it skips, deprecations inside torch, and the
    recurrent layers' weights it sees re-assigned."""
    # onnxscript's constant folding also warns of constants it leaves as
    # they are (the attention mask of a transformer body)
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # flatten_parameters of a recurrent backbone, harmless on the CPU
            warnings.filterwarnings(
                "ignore", message="The tensor attributes .* assigned during export"
            )
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _check_parity(graph, contexts: np.ndarray, target: Path, what) -> None:
    """The exported graph must give the torch model's values on real
    contexts; a silently different export would be worse than none."""
    import torch

    onnxruntime = require("onnxruntime")
    session = onnxruntime.InferenceSession(
        str(target), providers=["CPUExecutionProvider"]
    )
    got = session.run(None, {session.get_inputs()[0].name: contexts})
    with torch.no_grad():
        expected = [tensor.numpy() for tensor in graph(torch.tensor(contexts))]
    for value, reference in zip(got, expected, strict=True):
        scale = np.abs(reference).max() + 1e-12
        difference = float(np.abs(value - reference).max() / scale)
        if not difference <= EXPORT_TOLERANCE:
            raise RuntimeError(
                f"the ONNX export of {what} differs from the torch model by "
                f"{difference:.2g} (relative, over {EXPORT_TOLERANCE}): not written"
            )


def _set_metadata(target: Path, description: dict) -> None:
    """Write ``description`` into ``target``'s ``metadata_props``."""
    onnx = require("onnx")
    model = onnx.load(str(target))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(description)
    model.producer_name = "pricetune"
    onnx.save(model, str(target))


def export_onnx(forecaster, path, *, quantize=None, opset: int = DEFAULT_OPSET):
    """Export a fitted forecaster's network, with its normalisation, to ONNX.

    The graph takes ``context``, float32 ``(batch, context_length)``: the
    last ``context_length`` prices of each series, oldest first, in the
    data's units. It gives ``quantiles`` ``(batch, horizon, n_levels)``
    (one level for a point head) and ``point`` ``(batch, horizon)``, the
    median, both in the data's units: what the forecaster's
    ``predict_quantiles`` and ``predict`` compute, for every step up to the
    horizon of the fit. The export is checked against the torch model on
    the fit's own contexts before it is kept. A description (context length,
    horizon, fitted steps, quantile levels, series, frequency, cutoff) goes
    into the file's metadata and beside it, as ``<path>.json``.
    ``forecaster.to_onnx(path, quantize=...)`` does the same.

    Parameters
    ----------
    forecaster : FineTunedPriceForecaster
        fitted, without ``X`` (an ensemble's members go into one graph).
    path : str or path-like
        the ``.onnx`` file to write (its directory must exist).
    quantize : {None, "int8"}, default None
        ``"int8"``: dynamic quantisation of the weights of the matrix
        products to int8 (onnxruntime's ``quantize_dynamic``, ``QInt8``);
        the normalisation stays float32.
    opset : int, default 18
        the ONNX opset to write.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ImportError
        without onnx, onnxruntime or onnxscript (``pip install
        'pricetune[onnx]'``).
    NotImplementedError
        for a forecaster fitted with ``X``, or a model torch cannot export.

    Examples
    --------
    >>> from pricetune.export import OnnxForecaster, export_onnx
    >>> export_onnx(forecaster, "brent.onnx", quantize="int8")  # doctest: +SKIP
    >>> OnnxForecaster("brent.onnx").predict(y)  # doctest: +SKIP
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 18:
        raise ValueError(f"opset must be an int of at least 18, got {opset!r}")
    for module in ("onnx", "onnxruntime", "onnxscript"):
        require(module)
    _check_forecaster(forecaster)
    path = _check_path(path)
    graph = _graph(forecaster)
    model = graph.model
    what = (
        f"backbone={forecaster.backbone!r} ({type(model.backbone).__name__}) "
        f"with head={forecaster.head!r} ({type(model.head).__name__}) and "
        f"strategy={forecaster.strategy!r}"
    )
    contexts = _example_contexts(forecaster)
    description = describe(forecaster, quantize=quantize, opset=opset)
    handle, scratch = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(handle)
    scratch = Path(scratch)
    try:
        _torch_export(graph, contexts, scratch, opset, what)
        _check_parity(graph, contexts, scratch, what)
        if quantize == "int8":
            from pricetune.export.quantization import quantize_int8

            quantize_int8(scratch, scratch)
        _set_metadata(scratch, description)
        scratch.replace(path)
    finally:
        scratch.unlink(missing_ok=True)
    write_sidecar(path, description)
    return path
