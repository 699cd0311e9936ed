"""What each per-step piece of the training loop costs, torch's version
beside a hand-written one, on the model where per-step work shows most.

The training loop (``pricetune.training.trainer``) clips gradients and
steps a learning-rate schedule after every optimiser step, and with
``ema_epochs`` updates a moving average of the weights. For each piece this
times one training step of the same small model (backbone ``none``, a
linear head, batch 64: about a millisecond) with nothing extra, with the
library version and with the hand-written one, interleaved over several
rounds, and prints the median time per step and the ratio to the bare
step::

    PYTHONPATH=src python benchmarks/loop_pieces.py            # one CPU thread
    PYTHONPATH=src python benchmarks/loop_pieces.py --threads 2 --steps 400

The pieces:

* clip: ``torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)``
  against a norm of ``torch._foreach_norm`` and one ``torch._foreach_mul_``
  (bitwise the same result when every gradient is on one device);
* schedule: ``torch.optim.lr_scheduler.LambdaLR`` against setting each
  group's ``lr`` from the same factor function;
* average: ``torch.optim.swa_utils.AveragedModel`` (with the loop's decay
  rule as ``avg_fn``) over the trainable parameters against an in-place
  ``lerp_`` of a copy of them.

See docs/performance.md for what the loop keeps and why.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn


def model_and_batch(batch_size: int, seed: int = 0):
    from pricetune.components.heads import LinearHead
    from pricetune.components.simple_backbones import NoBackbone
    from pricetune.nn.model import PatchForecastModel

    torch.manual_seed(seed)
    model = PatchForecastModel(
        NoBackbone(patch_length=8, n_patches=15),
        LinearHead(hidden_size=8, n_patches=15, horizon=8),
        context_length=64,
        patch_length=8,
        patch_stride=4,
    )
    context = 50 + torch.randn(batch_size, 64).cumsum(dim=1)
    target = context[:, -1:] + torch.randn(batch_size, 8).cumsum(dim=1)
    return model, context, target


def hand_clip(parameters, max_norm: float) -> None:
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))


class HandSchedule:
    def __init__(self, optimiser, factor):
        self.optimiser, self.factor, self.step_count = optimiser, factor, 0
        self.base = [group["lr"] for group in optimiser.param_groups]

    def step(self) -> None:
        self.step_count += 1
        factor = self.factor(self.step_count)
        for group, base in zip(self.optimiser.param_groups, self.base, strict=True):
            group["lr"] = base * factor


def cosine(total: int):
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step / total, 1.0)))


def variants(steps: int):
    """``name -> make(model, optimiser) -> after_step()``: what each variant
    does after each optimiser step."""
    decay = 0.99

    def bare(model, optimiser):
        return lambda: None

    def library_clip(model, optimiser):
        params = [p for p in model.parameters() if p.requires_grad]
        return lambda: torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)

    def handwritten_clip(model, optimiser):
        params = [p for p in model.parameters() if p.requires_grad]
        return lambda: hand_clip(params, 1.0)

    def library_schedule(model, optimiser):
        return torch.optim.lr_scheduler.LambdaLR(optimiser, cosine(steps)).step

    def handwritten_schedule(model, optimiser):
        return HandSchedule(optimiser, cosine(steps)).step

    def library_average(model, optimiser):
        from torch.optim.swa_utils import AveragedModel

        trained = nn.ParameterList([p for p in model.parameters() if p.requires_grad])

        def moved(averaged, current, _):
            n = int(average.n_averaged)
            return averaged.lerp(current, 1.0 - min(decay, n / (n + 1)))

        average = AveragedModel(trained, avg_fn=moved)
        return lambda: average.update_parameters(trained)

    def handwritten_average(model, optimiser):
        params = [p for p in model.parameters() if p.requires_grad]
        copies = [p.detach().clone() for p in params]
        count = [0]

        def update():
            n = count[0]
            count[0] += 1
            with torch.no_grad():
                for copy, parameter in zip(copies, params, strict=True):
                    copy.lerp_(parameter.detach(), 1.0 - min(decay, n / (n + 1)))

        return update

    return {
        "bare step": bare,
        "clip: clip_grad_norm_(foreach=True)": library_clip,
        "clip: hand-written _foreach_norm": handwritten_clip,
        "schedule: LambdaLR": library_schedule,
        "schedule: hand-written": handwritten_schedule,
        "average: AveragedModel": library_average,
        "average: hand-written lerp_": handwritten_average,
    }


def time_variant(make, batch_size: int, steps: int) -> float:
    """Seconds per training step with ``make``'s extra work after each."""
    model, context, target = model_and_batch(batch_size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    after_step = make(model, optimiser)

    def step():
        loc, scale = model.scaling(context)
        loss = model.head.loss(model(context), (target - loc) / scale)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        after_step()

    for _ in range(20):  # warm-up
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--steps", type=int, default=300, help="steps per timing")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    named = variants(args.steps)
    times = {name: [] for name in named}
    for _ in range(args.rounds):
        for name, make in named.items():
            times[name].append(time_variant(make, args.batch_size, args.steps))
    bare = statistics.median(times["bare step"])
    print(
        f"## Per-step pieces of the training loop: backbone none, linear head, "
        f"batch {args.batch_size}, {args.threads} CPU thread(s), median of "
        f"{args.rounds} interleaved rounds of {args.steps} steps\n"
    )
    print("| variant | µs per step | extra µs | step time / bare step |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"| {name} | {median * 1e6:,.0f} | {(median - bare) * 1e6:+,.0f} "
            f"| {median / bare:.3f} |"
        )
    print(f"\ntorch {torch.__version__}")


if __name__ == "__main__":
    main()
