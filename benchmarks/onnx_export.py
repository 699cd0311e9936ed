"""ONNX export of a forecaster: size on disk, latency per forecast and the
accuracy int8 costs, side by side with torch.

It fits ``FineTunedPriceForecaster`` with its defaults (``--model
default``: three LSTMs and the quantile head, mixed in one graph) or with
one MiniLM and LoRA (``--model minilm-lora``) and a small step budget
(``--max-epochs``, 3 by default) on the built-in Pink Sheet panel (63
monthly series) up to ``--cutoff`` (2010-12), for the next 12 months,
then exports it with :func:`pricetune.export.export_onnx` in fp32 and
with int8 weights, and prints:

* **size**: the safe save's ``model.safetensors`` (the tensors the fit
  trained: with MiniLM, LoRA and the head, the frozen MiniLM weights being
  referenced, not stored), every weight of the torch model as safetensors,
  and the two ONNX files (self-contained: every weight inside);
* **latency**: the median over ``--calls`` single-window calls of the
  torch path of ``predict`` (``_raw_outputs``: the model and its
  de-normalisation, without sktime's bookkeeping), of onnxruntime fp32 and
  int8 (``OnnxForecaster.run``), and once per round a whole-panel forecast
  (``forecaster.predict()`` against ``OnnxForecaster.predict(panel)``), all
  on ``--threads`` threads, interleaved; with ratios to torch;
* **accuracy**: the mean absolute deviation of the int8 medians from the
  fp32 ones (relative to the fp32 forecasts), and the mean absolute
  percentage error of torch, fp32 and int8 against the held-out 12 months.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/onnx_export.py
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/onnx_export.py \
        --model minilm-lora

See docs/deployment.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: the forecasters --model names: the defaults, and the pretrained
#: language model with LoRA adapters (the largest file to export)
MODELS = {
    "default": {},
    "minilm-lora": {"backbone": "minilm", "strategy": "lora", "n_ensemble": 1},
}


def _size(path: Path) -> float:
    return path.stat().st_size / 2**20


def _median_ms(function, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cutoff", default="2010-12")
    parser.add_argument("--model", choices=sorted(MODELS), default="default")
    args = parser.parse_args(argv)

    import torch
    from safetensors.torch import save_file

    from pricetune import FineTunedPriceForecaster
    from pricetune.datasets import load_pinksheet
    from pricetune.export import OnnxForecaster, export_onnx

    torch.set_num_threads(args.threads)
    panel = load_pinksheet(form="panel")
    dates = panel.index.get_level_values(-1)
    cutoff = pd.Period(args.cutoff, "M")
    train = panel[dates <= cutoff]
    actual = panel[(dates > cutoff) & (dates <= cutoff + 12)].iloc[:, 0]
    forecaster = FineTunedPriceForecaster(
        **MODELS[args.model], max_epochs=args.max_epochs, random_state=0, verbose=0
    )
    start = time.perf_counter()
    forecaster.fit(train, fh=list(range(1, 13)))
    fit_seconds = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        saved = forecaster.save(folder / "safe", serialization_format="safetensors")
        full = folder / "full.safetensors"
        state = {k: v.contiguous() for k, v in forecaster.model_.state_dict().items()}
        save_file(state, str(full))
        start = time.perf_counter()
        fp32_path = export_onnx(forecaster, folder / "fp32.onnx")
        export_seconds = time.perf_counter() - start
        int8_path = export_onnx(forecaster, folder / "int8.onnx", quantize="int8")
        sizes = {
            "torch safe save (trained tensors)": _size(
                Path(saved) / "model.safetensors"
            ),
            "torch, every weight (safetensors)": _size(full),
            "ONNX fp32": _size(fp32_path),
            "ONNX int8": _size(int8_path),
        }
        fp32 = OnnxForecaster(fp32_path, n_threads=args.threads)
        int8 = OnnxForecaster(int8_path, n_threads=args.threads)

        window = train.loc["COPPER"].iloc[-forecaster.context_length_ :, 0]
        context = window.to_numpy(dtype=np.float32)[None]
        single = {
            "torch": lambda: forecaster._raw_outputs(context),
            "onnxruntime fp32": lambda: fp32.run(context),
            "onnxruntime int8": lambda: int8.run(context),
        }
        whole = {
            "torch": forecaster.predict,
            "onnxruntime fp32": lambda: fp32.predict(train),
            "onnxruntime int8": lambda: int8.predict(train),
        }
        for function in [*single.values(), *whole.values()]:
            function()  # warm up
        single_ms = {name: [] for name in single}
        whole_ms = {name: [] for name in whole}
        rounds = 5
        for _ in range(rounds):  # interleaved, so that drift hits all alike
            for name, function in single.items():
                single_ms[name].append(_median_ms(function, args.calls // rounds))
            for name, function in whole.items():
                whole_ms[name].append(_median_ms(function, 2))
        single_ms = {k: statistics.median(v) for k, v in single_ms.items()}
        whole_ms = {k: statistics.median(v) for k, v in whole_ms.items()}

        forecasts = {
            "torch": forecaster.predict().iloc[:, 0],
            "onnxruntime fp32": fp32.predict(train).iloc[:, 0],
            "onnxruntime int8": int8.predict(train).iloc[:, 0],
        }

    names = list(single)
    print(
        f"pricetune ONNX export: {args.model} forecaster (backbone="
        f"{forecaster.backbone!r}, strategy={forecaster.strategy!r}, head="
        f"{forecaster.head!r}, n_ensemble={forecaster.n_ensemble}), Pink Sheet "
        f"panel of {forecaster.n_series_} series to {cutoff}, fh=1..12, "
        f"max_epochs={args.max_epochs}; fit "
        f"{fit_seconds:.0f} s, fp32 export {export_seconds:.0f} s; "
        f"{args.threads} thread(s), torch {torch.__version__}, onnxruntime "
        f"{sys.modules['onnxruntime'].__version__}"
    )
    print()
    print(f"{'size on disk':<36}{'MiB':>10}{'x ONNX fp32':>14}")
    for name, size in sizes.items():
        print(f"{name:<36}{size:>10.2f}{size / sizes['ONNX fp32']:>14.2f}")
    print()
    print(f"{'latency (median)':<36}" + "".join(f"{n:>18}" for n in names))
    for label, table in (
        (f"one window, ms ({args.calls} calls)", single_ms),
        (f"panel of {len(context) * forecaster.n_series_} series, ms", whole_ms),
    ):
        print(f"{label:<36}" + "".join(f"{table[n]:>18.3f}" for n in names))
        ratios = "".join(f"{table['torch'] / table[n]:>18.2f}" for n in names)
        print(f"{'  speed-up over torch':<36}" + ratios)
    print()
    reference = forecasts["onnxruntime fp32"].to_numpy()
    print(f"{'accuracy, held-out 12 months':<36}" + "".join(f"{n:>18}" for n in names))
    deviation = [
        np.abs(forecasts[n].to_numpy() - reference).mean() / np.abs(reference).mean()
        for n in names
    ]
    print(
        f"{'mean |x - fp32| / mean |fp32|':<36}"
        + "".join(f"{d:>18.2e}" for d in deviation)
    )
    joined = {n: forecasts[n].reindex(actual.index) for n in names}
    mape = [100 * (np.abs(joined[n] - actual) / np.abs(actual)).mean() for n in names]
    print(f"{'MAPE vs actuals, %':<36}" + "".join(f"{m:>18.3f}" for m in mape))
    print()
    command = ["python", "benchmarks/onnx_export.py"]
    command += argv if argv is not None else sys.argv[1:]
    threads = os.environ.get("OMP_NUM_THREADS", "(unset)")
    print(f"command: OMP_NUM_THREADS={threads} " + " ".join(command))


if __name__ == "__main__":
    main()
