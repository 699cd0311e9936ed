"""GPU check of the training path, run on a machine with a CUDA GPU.

Fits a MiniLM-shaped backbone (6-layer BERT, hidden 384, random weights: the
compute is the same as the pretrained one) on daily Brent with
``device="auto"`` and reports, side by side in one run:

* the device and autocast dtype ``"auto"`` chose;
* training windows per second for CUDA + bf16, CUDA + fp32 and the CPU,
  as ratios to CUDA + bf16;
* that predictions come back finite, as pandas, and that bf16 and fp32
  forecasts agree to within a few percent.

    PYTHONPATH=src python benchmarks/gpu_check.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from throughput import minilm_shaped_checkpoint  # benchmarks/, beside this file

from pricetune import FineTunedPriceForecaster
from pricetune.datasets import load_brent

CONTEXT, PATCH, STRIDE, HORIZON = 512, 16, 8, 20


def run(y, path, *, device, precision, strategy, epochs, batch_size):
    forecaster = FineTunedPriceForecaster(
        backbone="hf",
        backbone_kwargs={"path": path, "pretrained": False},
        strategy=strategy,
        context_length=CONTEXT,
        patch_length=PATCH,
        patch_stride=STRIDE,
        batch_size=batch_size,
        max_epochs=epochs,
        validation_fraction=0.0,
        n_ensemble=1,
        device=device,
        precision=precision,
        random_state=0,
        verbose=0,
    )
    forecaster.fit(y, fh=np.arange(1, HORIZON + 1))
    n_windows = len(y) - CONTEXT - HORIZON + 1
    seconds = forecaster.training_history_["seconds"].to_numpy()
    steady = seconds[1:] if len(seconds) > 1 else seconds  # first epoch warms up
    started = time.perf_counter()
    prediction = forecaster.predict()
    latency = time.perf_counter() - started
    return {
        "forecaster": forecaster,
        "windows_per_s": n_windows / steady.mean(),
        "predict_ms": 1000 * latency,
        "prediction": prediction,
    }


def main() -> None:
    assert torch.cuda.is_available(), "this check needs a CUDA GPU"
    print(f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}")
    y = load_brent("daily")
    path = minilm_shaped_checkpoint()
    rows = {}
    for strategy in ("full", "lora"):
        for label, device, precision, data, epochs, batch in [
            ("cuda bf16 (auto)", "auto", "auto", y, 3, 512),
            ("cuda fp32", "cuda", "fp32", y, 3, 512),
            ("cpu fp32", "cpu", "fp32", y.iloc[-(CONTEXT + HORIZON + 127) :], 2, 64),
        ]:
            result = run(
                data,
                path,
                device=device,
                precision=precision,
                strategy=strategy,
                epochs=epochs,
                batch_size=batch,
            )
            rows[(strategy, label)] = result
            f = result["forecaster"]
            print(
                f"{strategy:5s} {label:17s} device_={f.device_!s:6s} "
                f"autocast={f._autocast_dtype} "
                f"windows/s={result['windows_per_s']:10.0f} "
                f"predict={result['predict_ms']:.1f} ms "
                f"finite={np.isfinite(result['prediction'].to_numpy()).all()}"
            )
        auto = rows[(strategy, "cuda bf16 (auto)")]
        assert str(auto["forecaster"].device_) == "cuda"
        assert auto["forecaster"]._autocast_dtype is torch.bfloat16
        for label in ("cuda fp32", "cpu fp32"):
            ratio = rows[(strategy, label)]["windows_per_s"] / auto["windows_per_s"]
            print(f"  {strategy}: {label} / cuda bf16 throughput = {ratio:.3f}")
        bf16 = auto["prediction"].to_numpy()
        fp32 = rows[(strategy, "cuda fp32")]["prediction"].to_numpy()
        gap = np.max(np.abs(bf16 - fp32) / np.abs(fp32))
        print(f"  {strategy}: max relative gap bf16 vs fp32 forecast = {gap:.4f}")
    print("GPU CHECK OK")


if __name__ == "__main__":
    main()
