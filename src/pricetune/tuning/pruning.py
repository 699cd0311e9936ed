"""Pruning of Optuna trials from inside the training loop:
:class:`OptunaPruning`, a :class:`~pricetune.training.Callback`."""

from __future__ import annotations

from pricetune.training.callbacks import Callback

__all__ = ["OptunaPruning"]


class OptunaPruning(Callback):
    """Report each epoch's validation loss to an Optuna trial and stop
    training when the trial's pruner says so.

    After every epoch of a fit the callback calls
    ``trial.report(metrics[monitor], step_offset + epoch)`` and then
    ``trial.should_prune()``; when that is true it sets ``pruned`` and
    ``run.should_stop = True``, so training ends after this epoch and
    ``fit`` returns as usual. The objective then raises
    ``optuna.TrialPruned`` (the callback cannot: an exception would
    escape ``fit`` half-way)::

        pruning = OptunaPruning(trial)
        forecaster.set_params(callbacks=[pruning]).fit(y, fh=[1, 2, 3])
        if pruning.pruned:
            raise optuna.TrialPruned()

    Parameters
    ----------
    trial : optuna.trial.Trial
        The trial to report to (anything with ``report(value, step)`` and
        ``should_prune()``).
    monitor : str, default "validation_loss"
        The key of the epoch's record that is reported: "validation_loss"
        (needs ``validation_fraction`` > 0) or "train_loss".
    step_offset : int, default 0
        Added to the epoch number (from 1) to make the reported step. A
        trial that fits several times (one fit per rolling origin) sets it
        before each fit, so that its steps keep increasing: origin ``i``
        reports at ``i * stride + epoch`` with ``stride`` at least the
        largest ``max_epochs`` of the search (what
        :func:`pricetune.tuning.tune` does).

    Attributes
    ----------
    pruned : bool
        Whether the pruner stopped a fit (stays true once set).
    history : list of (int, float)
        The ``(step, value)`` pairs reported, oldest first: its length is
        the number of epochs trained while this callback watched.

    Notes
    -----
    Only the run of ``fit`` reports (``run.update == 0``), and of an
    ensemble (``n_ensemble`` > 1, three by default) only its first member,
    so that no step is reported twice; once a member is pruned, every
    later run of the fit stops after its first epoch. A copy of the
    callback (``clone``, ``copy.deepcopy``: what sktime's compositors and
    grid searches make of an estimator) is the callback itself: a trial is
    a handle on its study's storage and cannot be copied, and a copied
    forecaster must report to the same trial. For the same reason a
    forecaster holding this callback cannot be pickled while it holds it.
    """

    # its run (or trial) lives in this process: n_processes workers refuse it
    stays_in_process = True

    def __init__(self, trial, monitor: str = "validation_loss", step_offset: int = 0):
        self.trial = trial
        self.monitor = monitor
        self.step_offset = int(step_offset)
        self.pruned = False
        self.history: list[tuple[int, float]] = []

    def __deepcopy__(self, memo):
        return self

    def __copy__(self):
        return self

    def on_epoch_end(self, run, metrics: dict) -> None:
        if self.pruned:  # the trial is lost: the ensemble's later members stop
            run.should_stop = True
            return
        if run.update != 0 or run.member not in (None, 0):
            return
        if self.monitor not in metrics:
            hint = (
                " (validation_fraction is 0: pass monitor='train_loss' or hold "
                "out validation windows)"
                if self.monitor == "validation_loss"
                else ""
            )
            raise ValueError(
                f"OptunaPruning monitors {self.monitor!r}, which this fit does "
                f"not record{hint}; it records {', '.join(sorted(metrics))}"
            )
        value = float(metrics[self.monitor])
        step = self.step_offset + int(metrics["epoch"])
        self.trial.report(value, step)
        self.history.append((step, value))
        if self.trial.should_prune():
            self.pruned = True
            run.should_stop = True
