"""One training loop for every backbone, head and strategy.

AdamW on the trainable parameters with torch's ``LambdaLR`` schedule
(linear warm-up and cosine decay, or constant), gradient clipping
(:func:`clip_gradients`) and accumulation, shuffled mini-batches of
windows, a time-ordered validation pass after each epoch, bfloat16
autocast on CUDA and optional ``torch.compile``. Everything else (early
stopping, weight averaging, checkpoints, logs, the progress bar, the
strategy's hooks, a user's monitors) is a callback
(:mod:`pricetune.training.callbacks`). In a process group of several
processes (``n_processes``, ``torchrun``) the loop trains data-parallel:
each process on its shard of every epoch, gradients averaged by
``DistributedDataParallel`` (:mod:`pricetune.training.distributed`).
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import torch
from torch import nn

from pricetune.data.batches import batch_source
from pricetune.training import distributed
from pricetune.training.callbacks import (
    Callback,
    TrainingRun,
    overrides,
    standard_callbacks,
)
from pricetune.training.config import TrainingConfig


def learning_rate_factor(config: TrainingConfig, step: int, total_steps: int) -> float:
    """Multiplier of ``learning_rate`` at optimiser step ``step`` (from 0):
    linear warm-up over ``warmup_fraction`` of the steps, then a cosine
    decay to zero; or 1 throughout for ``"constant"``."""
    if config.lr_schedule == "constant":
        return 1.0
    warmup = max(1, round(config.warmup_fraction * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class NonFiniteLossError(ValueError):
    """Training produced a NaN or infinite loss: the message names the
    epoch and the likely causes."""


def check_finite_loss(loss: float, kind: str, run, config: TrainingConfig) -> None:
    """Stop training at the first epoch whose ``kind`` loss is not finite:
    from then on the weights are NaN and every forecast would be too. (The
    loss is read once per epoch, so a GPU is not made to wait each step.)"""
    if math.isfinite(loss):
        return
    raise NonFiniteLossError(
        f"the {kind} loss became {loss} in epoch {run.epoch} (step {run.step}): "
        f"the learning rate ({config.learning_rate:g}) is likely too high for "
        "this model, or the data's scale too large for float32; lower "
        "learning_rate, set gradient_clip, or rescale the series"
    )


def epoch_order(
    train, generator: torch.Generator, config: TrainingConfig, world_size: int = 1
):
    """The training windows of one epoch, in order: every window shuffled
    (a new shuffle each epoch); with ``steps_per_epoch``, cut after as many
    windows as that many steps take, so that an epoch of a large panel
    costs the same as one of a panel ten times larger. With ``world_size``
    processes a step takes ``batch_size`` windows in each of them (they
    share the order out: :func:`~pricetune.training.distributed.shard`)."""
    shuffled = train[torch.randperm(len(train), generator=generator).numpy()]
    if config.steps_per_epoch is None:
        return shuffled
    wanted = config.steps_per_epoch * config.accumulate_batches * config.batch_size
    return shuffled[: wanted * world_size]


def spread_subset(indices, limit: int | None):
    """At most ``limit`` of ``indices``, evenly spread over them (all of
    them without a limit)."""
    if limit is None or len(indices) <= limit:
        return indices
    return indices[np.linspace(0, len(indices) - 1, limit).round().astype(int)]


def _batches(indices, batch_size: int):
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]


def parameter_groups(
    model: nn.Module, strategy, trainable: list, learning_rate: float
) -> list[dict]:
    """The optimiser's parameter groups: the strategy's (see
    :meth:`~pricetune.components.contract.Strategy.parameter_groups`), with
    every trainable parameter it left out in a last group at
    ``learning_rate``; or one group of all of ``trainable``."""
    groups = (
        None if strategy is None else strategy.parameter_groups(model, learning_rate)
    )
    if groups is None:
        return [{"params": trainable}]
    trainable_ids = {id(p) for p in trainable}
    seen: set[int] = set()
    checked = []
    for number, group in enumerate(groups):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(
                f"{type(strategy).__name__}.parameter_groups must return dicts "
                f"with 'params'; group {number} is {group!r}"
            )
        params = list(group["params"])
        for parameter in params:
            if id(parameter) not in trainable_ids:
                raise ValueError(
                    f"{type(strategy).__name__}.parameter_groups: group {number} "
                    "holds a parameter that is not trainable"
                )
            if id(parameter) in seen:
                raise ValueError(
                    f"{type(strategy).__name__}.parameter_groups: a parameter "
                    f"appears in more than one group (again in group {number})"
                )
            seen.add(id(parameter))
        if params:
            checked.append({**group, "params": params})
    rest = [p for p in trainable if id(p) not in seen]
    if rest:
        checked.append({"params": rest})
    return checked


def clip_gradients(parameters: list, max_norm: float) -> None:
    """Scale the gradients so that their global L2 norm is at most
    ``max_norm``: the result of ``torch.nn.utils.clip_grad_norm_``, bitwise.

    Written by hand for the usual case, every gradient on one device:
    ``clip_grad_norm_(foreach=True)`` costs a small model's step about 80
    µs against 40 µs for this one norm and one multiply
    (``benchmarks/loop_pieces.py``, docs/performance.md). Gradients on
    several devices go to torch's function.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    if len({g.device for g in grads}) > 1:
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))


@contextlib.contextmanager
def _scoring(run: TrainingRun):
    """``run.scored_weights`` in place of the trained weights, for a while
    (validation of the averaged weights)."""
    if run.scored_weights is None:
        yield
        return
    trained = {n: p.detach().clone() for n, p in run.trainable.items()}
    with torch.no_grad():
        for name, parameter in run.trainable.items():
            parameter.copy_(run.scored_weights[name])
    try:
        yield
    finally:
        with torch.no_grad():
            for name, parameter in run.trainable.items():
                parameter.copy_(trained[name])


class Trainer:
    """Trains a :class:`~pricetune.nn.model.PatchForecastModel` on
    :class:`~pricetune.data.windows.Windows` of raw values.

    ``config`` is the fit's :class:`~pricetune.training.config.TrainingConfig`
    (the loop reads its optimisation settings). ``placement`` says where
    batches are gathered (see :func:`pricetune.data.batches.batch_source`):
    ``"auto"`` keeps the data on a CUDA device when they fit, so the GPU
    never waits for the host.
    """

    def __init__(
        self,
        config: TrainingConfig,
        device: torch.device,
        autocast_dtype,
        placement: str = "auto",
    ):
        self.config = config
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.placement = placement

    def _loss(self, model: nn.Module, batch, forward=None) -> torch.Tensor:
        """The head's loss on ``batch`` (``(contexts, targets, covariates)``
        on the device); ``forward`` is the module to call (``model`` or its
        compiled form)."""
        context, target, covariates = batch
        with self._autocast():
            prediction = (model if forward is None else forward)(context, covariates)
        loc, scale = model.scaling(context)
        return model.head.loss(prediction.float(), (target - loc) / scale)

    def _autocast(self):
        """bfloat16 autocast when training uses it; else nothing (entering a
        disabled autocast costs a small model's step a few percent)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def evaluate(self, model: nn.Module, windows, indices, source=None) -> float:
        """Mean loss over the windows at ``indices``, without training."""
        if source is None:
            source = batch_source(windows, self.device, self.placement)
        model.eval()
        total = torch.zeros((), device=self.device)
        with torch.no_grad():
            for batch in _batches(source.order(indices), self.config.batch_size):
                total += self._loss(model, source.batch(batch)) * len(batch)
        return float(total) / max(len(indices), 1)

    def _fused_option(self, trainable: list) -> dict:
        """``fused=True`` for AdamW when every trainable parameter is a
        floating-point CUDA tensor: one kernel per step instead of several
        per parameter."""
        if all(p.is_cuda and p.is_floating_point() for p in trainable):
            return {"fused": True}
        return {}

    def fit(
        self,
        model,
        windows,
        generator: torch.Generator,
        strategy=None,
        callbacks: list[Callback] | None = None,
        **run_info,
    ) -> list[dict]:
        """Train ``model`` in place; returns one record per epoch.

        ``strategy`` (a :class:`~pricetune.components.contract.Strategy`)
        shapes the optimiser's parameter groups; its other hooks run as the
        :class:`~pricetune.training.callbacks.StrategyHooks` callback.
        ``callbacks`` run in their order at each hook; by default they are
        :func:`~pricetune.training.callbacks.standard_callbacks` of the
        config (early stopping, the strategy's hooks, and the weight
        averaging, checkpoints and logs the config asks for). ``run_info``
        (``member``, ``update``, ``seed``) tells them which run this is.

        In an initialised process group of several processes (see
        :mod:`~pricetune.training.distributed`), every process calls this
        with the same windows and settings and a ``generator`` seeded alike:
        each trains on its shard of every epoch, the gradients are averaged
        at each step, and the records (the losses over every shard) and the
        decision to stop are the same in every process.
        """
        config = self.config
        rank, world_size = distributed.world()
        train, validation = windows.split(config.validation_fraction)
        validation = spread_subset(validation, config.max_validation_windows)
        if len(train) < world_size:
            raise ValueError(
                f"{len(train)} training window(s) cannot be shared by "
                f"{world_size} processes: use fewer processes or more data"
            )
        source = batch_source(windows, self.device, self.placement)
        # what the optimiser holds, saved and restored as a whole even when
        # a strategy's hooks freeze part of it for a while
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not trainable:
            raise ValueError("the strategy left no trainable parameter")
        parameters = list(trainable.values())
        optimiser = torch.optim.AdamW(
            parameter_groups(model, strategy, parameters, config.learning_rate),
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
            **self._fused_option(parameters),
        )
        # each process's share of an epoch (all of it in a single process)
        steps_per_epoch = math.ceil(
            math.ceil(len(train) // world_size / config.batch_size)
            / config.accumulate_batches
        )
        if config.steps_per_epoch is not None:
            steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
        total_steps = steps_per_epoch * config.max_epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: learning_rate_factor(config, step, total_steps)
        )
        if callbacks is None:
            callbacks = standard_callbacks(
                config,
                strategy,
                member=run_info.get("member"),
                n_members=1,
                update=run_info.get("update", 0),
                seed=run_info.get("seed"),
            )
        callbacks = list(callbacks)
        run = TrainingRun(
            model=model,
            config=config,
            optimizer=optimiser,
            scheduler=scheduler,
            generator=generator,
            trainable=trainable,
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            has_validation=len(validation) > 0,
            windows=windows,
            callbacks=callbacks,
            rank=rank,
            world_size=world_size,
            **run_info,
        )
        for callback in callbacks:
            callback.on_train_begin(run)
        forward, no_sync = self._forward(run, strategy, len(train), len(validation))
        validation = validation[rank::world_size]  # each process scores its share
        while not run.should_stop and len(run.history) < config.max_epochs:
            run.epoch = len(run.history) + 1
            started = time.perf_counter()
            for callback in callbacks:
                callback.on_epoch_begin(run)
            model.train()
            order = epoch_order(train, generator, config, world_size)
            if world_size > 1:
                order = distributed.shard(order, rank, world_size)
            total = self._train_epoch(run, forward, source, order, no_sync)
            train_loss = self._over_ranks(total, len(order))
            record = {"epoch": run.epoch, "train_loss": train_loss}
            check_finite_loss(record["train_loss"], "training", run, config)
            if run.has_validation:
                with _scoring(run):
                    loss = self.evaluate(model, windows, validation, source)
                if world_size > 1:
                    loss = self._over_ranks(loss * len(validation), len(validation))
                record["validation_loss"] = loss
                check_finite_loss(record["validation_loss"], "validation", run, config)
            record["learning_rate"] = scheduler.get_last_lr()[0]
            record["seconds"] = time.perf_counter() - started
            run.history.append(record)
            for callback in callbacks:
                callback.on_epoch_end(run, record)
            if world_size > 1:  # one process's stop stops them all
                run.should_stop = distributed.any_rank(run.should_stop, self.device)
        for callback in callbacks:
            callback.on_train_end(run)
        return run.history

    def _forward(self, run: TrainingRun, strategy, n_train: int, n_validation: int):
        """The module training batches go through (the model, in
        ``DistributedDataParallel`` in a group of several processes,
        compiled with ``compile``) and DDP's ``no_sync`` (or ``None``)."""
        forward, no_sync = run.model, None
        if run.world_size > 1:
            _check_same_run(run, n_train, n_validation, self.device)
            forward = distributed.wrap(
                run.model, self.device, find_unused=_changes_trainable(strategy)
            )
            no_sync = forward.no_sync
        if self.config.compile:
            mode = None if self.config.compile is True else self.config.compile
            forward = torch.compile(forward, mode=mode)
        return forward, no_sync

    def _over_ranks(self, total: float, count: int) -> float:
        """The mean of a summed loss ``total`` over ``count`` windows; in a
        group of several processes, over every process's windows."""
        if distributed.world()[1] == 1:
            return total / count
        return distributed.mean_over_ranks(total, count, self.device)

    def _train_epoch(
        self, run: TrainingRun, forward, source, order, no_sync=None
    ) -> float:
        """One pass over ``order``; returns the summed (not averaged) loss.

        Gradients of ``accumulate_batches`` consecutive batches add up before
        each optimiser step, weighted so that the step equals one step on
        their union. ``no_sync`` (``DistributedDataParallel.no_sync``)
        keeps the processes from averaging gradients before the last batch
        of each step.
        """
        config = self.config
        model, optimiser, scheduler = run.model, run.optimizer, run.scheduler
        step_hooks = [c for c in run.callbacks if overrides(c, "on_step_end")]
        penalties = [c for c in run.callbacks if overrides(c, "loss_penalty")]
        parameters = [p for group in optimiser.param_groups for p in group["params"]]
        batches = list(_batches(source.order(order), config.batch_size))
        # summed on the device: reading it every step would make the host
        # wait for the GPU before it prepares the next batch
        total = torch.zeros((), device=self.device)
        for start in range(0, len(batches), config.accumulate_batches):
            group = batches[start : start + config.accumulate_batches]
            group_size = sum(len(batch) for batch in group)
            optimiser.zero_grad(set_to_none=True)
            for number, batch in enumerate(group, start=1):
                last = number == len(group) or no_sync is None
                with contextlib.nullcontext() if last else no_sync():
                    loss = self._data_loss(model, source.batch(batch), forward)
                    for callback in penalties:
                        penalty = callback.loss_penalty(run)
                        if penalty is not None:
                            loss = loss + penalty
                    share = len(batch) / group_size
                    (loss if share == 1 else loss * share).backward()
                total += loss.detach() * len(batch)
            if config.gradient_clip is not None:
                clip_gradients(parameters, config.gradient_clip)
            optimiser.step()
            scheduler.step()
            for callback in step_hooks:
                callback.on_step_end(run)
        return float(total)  # one synchronisation per epoch

    def _data_loss(self, model, batch, forward) -> torch.Tensor:
        """The loss of a training batch, after the augmentations, with the
        adversarial term when ``adversarial_epsilon`` is set."""
        config = self.config
        context, target, covariates = batch
        if config.augmentations:
            with torch.no_grad():
                for augmentation in config.augmentations:
                    context, target = augmentation(context, target)
        if not config.adversarial_epsilon:
            return self._loss(model, (context, target, covariates), forward)
        from pricetune.components.augmentations import typical_move

        context = context.detach().requires_grad_(True)
        loss = self._loss(model, (context, target, covariates), forward)
        (gradient,) = torch.autograd.grad(loss, context, retain_graph=True)
        with torch.no_grad():
            step = config.adversarial_epsilon * typical_move(context)
            moved = context + step * gradient.sign()
        adversarial = self._loss(model, (moved, target, covariates), forward)
        return 0.5 * (loss + adversarial)


def train_member(
    model, windows, config, device, autocast_dtype, seed: int, rank: int = 0, /, **fit
) -> list[dict]:
    """:meth:`Trainer.fit` of one model with torch seeded as every fit is:
    dropout and augmentations from ``seed + rank``, the shuffling from
    ``seed`` (alike in every process of a group, so that they share one
    order of windows out). ``fit`` are the other arguments of
    :meth:`Trainer.fit` (``strategy``, ``callbacks``, the run's info, whose
    ``seed`` is the member's, for the callbacks)."""
    torch.manual_seed(seed + rank)
    generator = torch.Generator().manual_seed(seed)
    return Trainer(config, device, autocast_dtype).fit(model, windows, generator, **fit)


def _changes_trainable(strategy) -> bool:
    """Whether ``strategy`` may change what trains from one epoch to the
    next (its ``on_epoch_start`` hook: gradual unfreezing), so that
    ``DistributedDataParallel`` must allow parameters without a gradient."""
    if strategy is None:
        return False
    from pricetune.components.contract import Strategy

    hook = getattr(type(strategy), "on_epoch_start", Strategy.on_epoch_start)
    return hook is not Strategy.on_epoch_start


def _check_same_run(run: TrainingRun, n_train: int, n_validation: int, device):
    """Every process of the group must train the same run: the same number
    of windows and the same point of it (a resumed checkpoint); otherwise
    one would wait forever for another's gradients."""
    state = (n_train, n_validation, len(run.history), bool(run.should_stop))
    states = distributed.gather(state)
    if any(other != states[0] for other in states):
        raise ValueError(
            "the processes of the group disagree on the run (training windows, "
            f"validation windows, epochs done, finished) by rank: {states}; "
            "every process must fit the same data with the same settings, and "
            "a checkpoint_dir must be one folder that every process sees"
        )
