"""``--param`` values: ``KEY=VALUE`` for every pricetune model of the run,
``MODEL:KEY=VALUE`` for one. ``VALUE`` is JSON (``5``, ``true``,
``{"n_layers": 1}``) or, when it is not, a string. Keys are checked
against :class:`~pricetune.FineTunedPriceForecaster`'s parameters before
anything is fitted."""

from __future__ import annotations

import difflib
import json

from pricetune.cli.errors import USAGE, CommandError


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def forecaster_parameters() -> list[str]:
    from pricetune.estimators.forecaster import FineTunedPriceForecaster

    return sorted(FineTunedPriceForecaster().get_params(deep=False))


def parse_params(items, models=None) -> tuple[dict, dict]:
    """``(shared, per_model)`` from the ``--param`` items; ``models`` (the
    run's model names, when known) checks ``MODEL:`` prefixes."""
    shared: dict = {}
    per_model: dict[str, dict] = {}
    known = None
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(
                f"--param takes KEY=VALUE or MODEL:KEY=VALUE, got {item!r}", USAGE
            )
        model, colon, key = key.strip().rpartition(":")
        key = key.strip()
        known = known or forecaster_parameters()
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CommandError(
                f"--param {item!r}: {key!r} is not a FineTunedPriceForecaster "
                f"parameter{hint}",
                USAGE,
            )
        if colon:
            model = model.strip()
            if models is not None and model not in models:
                raise CommandError(
                    f"--param {item!r}: model {model!r} is not in this run "
                    f"({', '.join(models)})",
                    USAGE,
                )
            per_model.setdefault(model, {})[key] = parse_value(value)
        else:
            shared[key] = parse_value(value)
    return shared, per_model
