"""export_onnx and OnnxForecaster: the exported graph forecasts what the
forecaster does, int8 stays close and smaller, errors are one line."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from pricetune.export import OnnxForecaster, export_onnx
from pricetune.export.metadata import sidecar_path

# the optional extra these tests need (CI installs it: the test extra)
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

RTOL = 1e-4


def relative(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.abs(a - b).max() / np.abs(b).max())


def assert_parity(forecaster, runtime, history, alpha=(0.01, 0.25, 0.5, 0.99)):
    expected = forecaster.predict()
    got = runtime.predict(history)
    assert got.index.equals(expected.index)
    assert relative(got, expected) < RTOL
    if forecaster.quantiles_ is not None:
        levels = list(forecaster.quantiles_)
        expected_q = forecaster.predict_quantiles(alpha=levels)
        got_q = runtime.predict_quantiles(history)
        assert list(got_q.columns) == levels
        assert relative(got_q, expected_q) < RTOL
        # levels off the head's grid: interpolated and extended alike
        expected_a = forecaster.predict_quantiles(alpha=list(alpha))
        assert relative(runtime.predict_quantiles(history, alpha), expected_a) < RTOL


# ------------------------------------------------------------------ parity
def test_fp32_matches_the_forecaster(fitted_none, exported_none, brent):
    runtime = OnnxForecaster(exported_none)
    assert (runtime.context_length, runtime.horizon) == (24, 3)
    assert runtime.fh_steps == [1, 2, 3]
    assert runtime.quantiles == fitted_none.quantiles_
    assert_parity(fitted_none, runtime, brent)


@pytest.mark.parametrize("backbone", ["lstm", "gru"])
def test_recurrent_backbones_match(fit, backbone, brent, tmp_path):
    forecaster = fit(brent, backbone=backbone, backbone_kwargs={"hidden_size": 16})
    runtime = OnnxForecaster(export_onnx(forecaster, tmp_path / "m.onnx"))
    assert_parity(forecaster, runtime, brent)


def test_minilm_with_lora_matches(fit, brent, tmp_path):
    forecaster = fit(
        brent,
        backbone="minilm",
        backbone_kwargs={"n_layers": 1},
        strategy="lora",
        strategy_kwargs={"r": 2},
        max_epochs=1,
    )
    runtime = OnnxForecaster(export_onnx(forecaster, tmp_path / "minilm.onnx"))
    assert_parity(forecaster, runtime, brent)


def test_point_head_and_fh_subset(fit, brent, tmp_path):
    forecaster = fit(brent, fh=(2, 4), backbone="none", head="linear")
    runtime = OnnxForecaster(export_onnx(forecaster, tmp_path / "point.onnx"))
    assert runtime.horizon == 4 and runtime.fh_steps == [2, 4]
    assert_parity(forecaster, runtime, brent)
    with pytest.raises(NotImplementedError, match="point forecasts only"):
        runtime.predict_quantiles(brent)


def test_calibrated_intervals_are_exported(fitted_none, brent, tmp_path):
    forecaster = copy.deepcopy(fitted_none)
    forecaster.interval_scale_ = 1.7  # as calibrate_intervals would set it
    runtime = OnnxForecaster(export_onnx(forecaster, tmp_path / "wide.onnx"))
    assert_parity(forecaster, runtime, brent)
    plain = OnnxForecaster(export_onnx(fitted_none, tmp_path / "plain.onnx"))
    spread = runtime.predict_quantiles(brent, [0.1, 0.9]).diff(axis=1)[0.9]
    plain_spread = plain.predict_quantiles(brent, [0.1, 0.9]).diff(axis=1)[0.9]
    np.testing.assert_allclose(spread, 1.7 * plain_spread, rtol=1e-4)


def test_shrinkage_is_in_the_graph(fitted_none, exported_none, brent, tmp_path):
    shrunk = OnnxForecaster(exported_none)  # the default's 0.75
    assert fitted_none.shrinkage_ == 0.75 and shrunk.description["shrinkage"] == 0.75
    forecaster = copy.deepcopy(fitted_none)
    forecaster.shrinkage_ = 0.0  # as shrinkage=0 would set it
    plain = OnnxForecaster(export_onnx(forecaster, tmp_path / "plain.onnx"))
    assert plain.description["shrinkage"] == 0.0
    assert_parity(forecaster, plain, brent)
    last = float(brent.iloc[-1])
    np.testing.assert_allclose(
        shrunk.predict(brent), last + 0.25 * (plain.predict(brent) - last), rtol=1e-5
    )
    move = shrunk.predict(brent).to_numpy() - plain.predict(brent).to_numpy()
    levels = [0.1, 0.5, 0.9]
    np.testing.assert_allclose(
        shrunk.predict_quantiles(brent, levels).to_numpy(),
        plain.predict_quantiles(brent, levels).to_numpy() + move[:, None],
        rtol=1e-5,
    )


def test_the_forecasters_to_onnx_is_export_onnx(fitted_none, exported_none, tmp_path):
    path = fitted_none.to_onnx(tmp_path / "method.onnx")
    assert path.read_bytes() == exported_none.read_bytes()


def test_conformal_intervals_are_exported(fit, brent, tmp_path):
    forecaster = fit(brent, calibrate_intervals="conformal")
    assert forecaster.conformal_margins_ is not None
    runtime = OnnxForecaster(export_onnx(forecaster, tmp_path / "conformal.onnx"))
    assert runtime.description["conformal_margins"] is True
    assert_parity(forecaster, runtime, brent)
    # a grid without the median: both clamp to the interpolated median
    no_median = fit(
        brent, calibrate_intervals="conformal", head_kwargs={"quantiles": [0.1, 0.9]}
    )
    runtime = OnnxForecaster(export_onnx(no_median, tmp_path / "no-median.onnx"))
    assert_parity(no_median, runtime, brent, alpha=(0.1, 0.5, 0.9))


def test_panel_matches(fit, tmp_path):
    from pricetune.datasets import load_pinksheet

    panel = load_pinksheet(["COPPER", "Zinc", "CRUDE_BRENT"], form="panel")
    forecaster = fit(panel, fh=(1, 2), backbone="none")
    runtime = OnnxForecaster(export_onnx(forecaster, tmp_path / "panel.onnx"))
    assert runtime.description["series"] == ["COPPER", "Zinc", "CRUDE_BRENT"]
    expected = forecaster.predict()
    got = runtime.predict(panel)
    assert got.index.tolist() == expected.index.tolist()
    assert got.index.names == expected.index.names
    assert list(got.columns) == list(expected.columns)
    assert relative(got.to_numpy(), expected.to_numpy()) < RTOL
    # the same from a wide table, one series a column
    wide = panel.iloc[:, 0].unstack(level=0)
    np.testing.assert_allclose(runtime.predict(wide).to_numpy(), got.to_numpy())


def test_arrays_and_batches(fitted_none, exported_none, brent):
    runtime = OnnxForecaster(exported_none)
    expected = fitted_none.predict().to_numpy()
    single = runtime.predict(brent.to_numpy()[-30:])
    assert single.index.tolist() == [1, 2, 3]
    assert relative(single, expected) < RTOL
    rows = np.stack([brent.to_numpy()[-25:-1], brent.to_numpy()[-24:]])
    batch = runtime.predict(rows)
    assert batch.index.tolist() == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    assert relative(batch.loc[1].to_numpy()[:, 0], expected) < RTOL
    quantiles, point = runtime.run(rows.astype(np.float32))
    assert quantiles.shape == (2, 3, 13) and point.shape == (2, 3)
    assert runtime.predict(brent, fh=[3]).index.equals(fitted_none.predict().index[2:])


# -------------------------------------------------------------------- int8
def test_int8_is_close_and_smaller(fit, brent, tmp_path):
    import onnx

    forecaster = fit(brent, backbone="lstm", backbone_kwargs={"hidden_size": 64})
    fp32 = export_onnx(forecaster, tmp_path / "fp32.onnx")
    int8 = export_onnx(forecaster, tmp_path / "int8.onnx", quantize="int8")
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size
    operators = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} & operators
    runtime = OnnxForecaster(int8)
    assert runtime.description["quantize"] == "int8"
    reference = OnnxForecaster(fp32).predict_quantiles(brent)
    quantised = runtime.predict_quantiles(brent)
    assert 0 < relative(quantised, reference) < 0.05
    assert relative(runtime.predict(brent), forecaster.predict()) < 0.05


def test_an_int8_ensemble_stays_close_on_a_panel_of_any_scale(fit, tmp_path):
    """The members' mixture is fixed arithmetic on prices: int8 quantises
    the networks' weights only, so a $1 series beside a $7,000 one keeps
    its forecast (quantised activations on a price scale would not)."""
    from pricetune.datasets import load_pinksheet

    panel = load_pinksheet(["COPPER", "BANANA_US"], form="panel", start="1990-01")
    ensemble = fit(panel, backbone="lstm", n_ensemble=3, max_epochs=2)
    fp32 = OnnxForecaster(export_onnx(ensemble, tmp_path / "fp32.onnx"))
    int8 = OnnxForecaster(
        export_onnx(ensemble, tmp_path / "int8.onnx", quantize="int8")
    )
    reference = fp32.predict(panel).iloc[:, 0]
    quantised = int8.predict(panel).iloc[:, 0]
    expected = ensemble.predict().iloc[:, 0]
    assert relative(reference.sort_index(), expected.sort_index()) < RTOL
    for series in ["COPPER", "BANANA_US"]:
        assert 0 < relative(quantised.loc[series], reference.loc[series]) < 0.05


# ---------------------------------------------------------------- metadata
def test_description_in_sidecar_and_metadata(fitted_none, exported_none, tmp_path):
    sidecar = json.loads(sidecar_path(exported_none).read_text())
    assert sidecar["context_length"] == 24 and sidecar["horizon"] == 3
    assert sidecar["fh_steps"] == [1, 2, 3]
    assert sidecar["quantiles"] == list(fitted_none.quantiles_)
    assert sidecar["freq"] is None and sidecar["index_kind"] == "period"
    assert sidecar["cutoff"] == str(fitted_none.cutoff[0])
    assert sidecar["name"] == "brent" and sidecar["backbone"] == "none"
    # the .onnx file alone: the description comes from its metadata
    alone = tmp_path / "copy.onnx"
    shutil.copy(exported_none, alone)
    assert not sidecar_path(alone).exists()
    assert OnnxForecaster(alone).description == sidecar


def test_export_overwrites_and_leaves_no_scratch(fitted_none, tmp_path):
    target = tmp_path / "m.onnx"
    export_onnx(fitted_none, target)
    export_onnx(fitted_none, target, quantize="int8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]
    assert OnnxForecaster(target).description["quantize"] == "int8"


# ------------------------------------------------------------------ errors
def test_unfitted_forecaster(tmp_path):
    from sklearn.exceptions import NotFittedError

    from pricetune import FineTunedPriceForecaster

    with pytest.raises(NotFittedError, match="not fitted yet: call fit"):
        export_onnx(FineTunedPriceForecaster(backbone="none"), tmp_path / "m.onnx")


def test_missing_directory(fitted_none, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(fitted_none, tmp_path / "missing" / "m.onnx")
    assert not (tmp_path / "missing").exists()


def test_bad_arguments(fitted_none, tmp_path):
    with pytest.raises(ValueError, match="quantize must be None or 'int8'"):
        export_onnx(fitted_none, tmp_path / "m.onnx", quantize="int4")
    with pytest.raises(ValueError, match="opset must be an int of at least 18"):
        export_onnx(fitted_none, tmp_path / "m.onnx", opset=11)
    with pytest.raises(TypeError, match="exports a FineTunedPriceForecaster"):
        export_onnx(object(), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_covariates_are_refused(fit, brent, tmp_path):
    X = pd.DataFrame({"trend": np.arange(len(brent), dtype=float)}, index=brent.index)
    with_x = fit(brent, X=X, backbone="none")
    with pytest.raises(NotImplementedError, match=r"fitted with X \(\['trend'\]\)"):
        export_onnx(with_x, tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "settings",
    [
        {"backbone": "lstm", "backbone_kwargs": {"hidden_size": 8}},
        {"backbone": "none", "calibrate_intervals": "conformal"},
        {"backbone": "none", "head": "linear"},
    ],
    ids=["lstm-mixture", "conformal", "point-mean"],
)
def test_ensembles_are_mixed_in_the_graph(fit, brent, tmp_path, settings):
    """An ensemble's members go into one graph; their quantiles are mixed
    there as the forecaster mixes them (point forecasts averaged), then
    calibrated."""
    ensemble = fit(brent, n_ensemble=3, max_epochs=2, **settings)
    runtime = OnnxForecaster(export_onnx(ensemble, tmp_path / "e.onnx"))
    assert runtime.description["members"] == 3
    assert_parity(ensemble, runtime, brent)
    # the mixture is not the first member's forecast, nor the mean of the
    # members' medians alone: the graph does combine them
    first = copy.deepcopy(ensemble)
    first.model_ = ensemble.model_.members[0]
    assert relative(first.predict(), ensemble.predict()) > 1e-3


class Branching(torch.nn.Module):
    """A backbone whose forward branches on a value: torch.export cannot
    trace it."""

    def forward(self, patches):
        if patches.sum() > 0:
            return patches
        return -patches


def test_unexportable_model_is_named(fitted_none, tmp_path):
    forecaster = copy.deepcopy(fitted_none)
    forecaster.model_.backbone = Branching()
    with pytest.raises(
        NotImplementedError,
        match=r"could not export backbone='none' \(Branching\) with head='quantile'",
    ):
        export_onnx(forecaster, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_runtime_input_errors(exported_none, brent, tmp_path):
    runtime = OnnxForecaster(exported_none)
    with pytest.raises(ValueError, match="has 10 values; the model reads the last"):
        runtime.predict(brent.iloc[:10])
    with pytest.raises(ValueError, match="missing or non-finite"):
        runtime.predict(np.r_[brent.to_numpy()[-24:-1], np.nan])
    with pytest.raises(ValueError, match="fh must be steps ahead from 1 to 3"):
        runtime.predict(brent, fh=[4])
    with pytest.raises(ValueError, match=r"contexts must be \(batch, 24\)"):
        runtime.run(np.zeros((2, 12)))
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        OnnxForecaster(tmp_path / "none.onnx")


# ----------------------------------------------------- optional packages
@pytest.mark.parametrize("module", ["onnxruntime", "onnx", "onnxscript"])
def test_missing_package_names_the_extra(module, monkeypatch, fitted_none, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r"pip install 'pricetune\[onnx\]'") as info:
        export_onnx(fitted_none, tmp_path / "m.onnx")
    assert module in str(info.value) and "\n" not in str(info.value)


def test_runtime_without_onnxruntime(monkeypatch, exported_none):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    missing = r"ONNX export needs onnxruntime, which is not installed: pip install "
    with pytest.raises(ImportError, match=missing + r"'pricetune\[onnx\]'"):
        OnnxForecaster(exported_none)


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_pricetune_loads_no_onnx():
    out = _python(
        "import sys, pricetune, pricetune.export\n"
        "heavy = ('onnx', 'onnxruntime', 'onnxscript', 'torch')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    assert out.strip() == "[]"


def test_runtime_never_imports_torch(fitted_none, exported_none, brent):
    history = brent.to_numpy()[-24:].tolist()
    out = _python(
        "import json, sys\n"
        "from pricetune.export.runtime import OnnxForecaster\n"
        f"runtime = OnnxForecaster({str(exported_none)!r})\n"
        f"point = runtime.predict({history}).tolist()\n"
        f"quantiles = runtime.predict_quantiles({history}, [0.1, 0.9]).shape\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'sktime' not in sys.modules, 'sktime was imported'\n"
        "print(json.dumps(point))"
    )
    point = json.loads(out.strip().splitlines()[-1])
    assert relative(point, fitted_none.predict().to_numpy()) < RTOL
