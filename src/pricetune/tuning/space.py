"""The search space of :func:`pricetune.tuning.tune`: its format, the
default one, and how a trial draws its settings from it.

A space is a dict ``{parameter: entry}`` over
:class:`~pricetune.FineTunedPriceForecaster`'s parameters. An entry is

* a **range**: a list or tuple whose first item is ``"float"``, ``"log"``
  or ``"int"``, then the bounds (inclusive) and, for ``"float"`` and
  ``"int"``, an optional step: ``("log", 1e-4, 1e-2)`` draws on a log
  scale, ``("int", 10, 30, 10)`` draws 10, 20 or 30;
* a list of **choices**: any other list or tuple, ``["lstm", "none"]``;
  choices may be dicts or lists (``[{"hidden_size": 8}, {"hidden_size":
  32}]`` for ``backbone_kwargs``);
* a **fixed** value: anything else (a number, a string, a dict, None);
  every trial uses it.

The same rules read the JSON of ``pricetune tune --space``, where lists
stand for tuples: ``{"learning_rate": ["log", 1e-4, 1e-2]}``.

``strategy`` depends on the backbone: a backbone trained from scratch
(:data:`FROM_SCRATCH`: "none", "lstm", "gru") has no pretrained body to
adapt, so a trial that draws one trains it with strategy "full" (and
does not draw a strategy), unless the strategy is fixed (in the space or in
``params``).
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_SPACE",
    "FROM_SCRATCH",
    "Dimension",
    "check_space",
    "largest",
    "read_space",
    "suggest",
]

#: what :func:`~pricetune.tuning.tune` searches unless told otherwise: the
#: backbone, the strategy (for the pretrained one), the learning rate, the
#: context and the step budget (epochs of ``steps_per_epoch`` steps)
DEFAULT_SPACE = {
    "backbone": ["minilm", "lstm", "none"],
    "strategy": ["lora", "full", "layernorm"],
    "learning_rate": ("log", 1e-4, 1e-2),
    "context_length": [12, 24, 48],
    "max_epochs": ("int", 10, 30, 10),
}
#: backbones without a pretrained body: they train with strategy "full"
FROM_SCRATCH = ("none", "lstm", "gru")
RANGES = ("float", "log", "int")
#: parameters the search sets itself
RESERVED = ("callbacks",)
_PRIMITIVE = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Dimension:
    """One entry of a checked space: ``kind`` is "choice", "float", "log",
    "int" or "fixed"; ``values`` holds the choices (or the fixed value),
    ``low``/``high``/``step`` a range."""

    name: str
    kind: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None

    def describe(self):
        """The entry as JSON can hold it (for best.json)."""
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "choice":
            return list(self.values)
        bounds = [self.low, self.high] + ([self.step] if self.step else [])
        return [self.kind, *bounds]

    def largest(self):
        """The largest value a trial can get (numbers only), or None."""
        if self.kind in RANGES:
            return self.high
        numbers_ = [
            v
            for v in self.values
            if isinstance(v, numbers.Real) and not isinstance(v, bool)
        ]
        return max(numbers_) if numbers_ else None


def read_space(text) -> dict:
    """A space from a dict, JSON text, or the path of a JSON file."""
    if isinstance(text, Mapping):
        return dict(text)
    source = str(text)
    path = Path(source)
    if not source.lstrip().startswith("{") and path.is_file():
        source = path.read_text()
    try:
        space = json.loads(source)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"the search space is neither a JSON object nor a JSON file: {error}"
        ) from None
    if not isinstance(space, dict):
        raise ValueError(
            "the search space must be a JSON object {parameter: entry}, got "
            f"{type(space).__name__}"
        )
    return space


def _number(name, value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"space[{name!r}]: the {what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"space[{name!r}]: the {what} must be finite, got {value!r}")
    return value


def _range(name, entry) -> Dimension:
    kind, *bounds = entry
    if len(bounds) not in (2, 3) or (kind == "log" and len(bounds) == 3):
        form = (
            "('log', low, high)" if kind == "log" else f"({kind!r}, low, high[, step])"
        )
        raise ValueError(f"space[{name!r}]: a {kind} range is {form}, got {entry!r}")
    low, high = _number(name, bounds[0], "low"), _number(name, bounds[1], "high")
    step = _number(name, bounds[2], "step") if len(bounds) == 3 else None
    if kind == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise ValueError(f"space[{name!r}]: an int range needs integers, got {entry!r}")
    if not low < high:
        raise ValueError(f"space[{name!r}]: low must be below high, got {entry!r}")
    if kind == "log" and low <= 0:
        raise ValueError(f"space[{name!r}]: a log range needs low > 0, got {entry!r}")
    if step is not None and step <= 0:
        raise ValueError(f"space[{name!r}]: the step must be positive, got {entry!r}")
    if kind == "int":
        low, high = int(low), int(high)
        step = None if step is None else int(step)
    return Dimension(name, kind, low=low, high=high, step=step)


def _dimension(name: str, entry) -> Dimension:
    if isinstance(entry, list | tuple):
        if entry and isinstance(entry[0], str) and entry[0] in RANGES:
            return _range(name, entry)
        if not entry:
            raise ValueError(f"space[{name!r}]: an empty list of choices")
        return Dimension(name, "choice", tuple(entry))
    return Dimension(name, "fixed", (entry,))


def check_space(space, known, default: bool = True) -> dict[str, Dimension]:
    """The checked space: :data:`DEFAULT_SPACE` (when ``default``) updated
    with ``space``, every name one of ``known`` (the forecaster's
    parameters). Raises a one-line ValueError naming the bad entry."""
    if space is not None and not isinstance(space, Mapping):
        raise TypeError(
            f"space must be a dict {{parameter: entry}}, got {type(space).__name__}"
        )
    known = list(known)
    for name in space or {}:
        if name in RESERVED:
            raise ValueError(
                f"space[{name!r}]: the search sets {name} itself; pass your own "
                "in params="
            )
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown parameter {name!r} in the search space: not a "
                f"FineTunedPriceForecaster parameter{hint}"
            )
    merged = {**(DEFAULT_SPACE if default else {}), **(space or {})}
    dimensions = {name: _dimension(name, entry) for name, entry in merged.items()}
    # the backbone first: the strategy's draw depends on it
    order = sorted(dimensions, key=lambda name: name != "backbone")
    return {name: dimensions[name] for name in order}


def largest(dimensions: Mapping[str, Dimension], name: str, fallback):
    """The largest value of ``name`` a trial can get (``fallback`` when it is
    not searched)."""
    dimension = dimensions.get(name)
    value = None if dimension is None else dimension.largest()
    return fallback if value is None else value


def _choice(trial, dimension: Dimension):
    values = dimension.values
    if all(isinstance(v, _PRIMITIVE) for v in values):
        return trial.suggest_categorical(dimension.name, list(values))
    # Optuna's choices must be None, bool, int, float or str: draw among
    # their JSON texts and use the value behind the one drawn
    texts = [json.dumps(v, sort_keys=True, default=str) for v in values]
    return values[texts.index(trial.suggest_categorical(dimension.name, texts))]


def suggest(trial, dimensions: Mapping[str, Dimension], fixed=()) -> dict:
    """The settings of one trial, drawn from ``dimensions`` (fixed entries
    included); ``fixed`` names the settings fixed outside the space (a
    fixed strategy is not replaced by "full")."""
    params = {}
    for name, dimension in dimensions.items():
        if (
            name == "strategy"
            and dimension.kind != "fixed"
            and params.get("backbone") in FROM_SCRATCH
        ):
            params[name] = "full"
        elif dimension.kind == "fixed":
            params[name] = dimension.values[0]
        elif dimension.kind == "choice":
            params[name] = _choice(trial, dimension)
        elif dimension.kind == "int":
            params[name] = trial.suggest_int(
                name, dimension.low, dimension.high, step=dimension.step or 1
            )
        else:
            params[name] = trial.suggest_float(
                name,
                dimension.low,
                dimension.high,
                log=dimension.kind == "log",
                step=dimension.step,
            )
    if params.get("backbone") in FROM_SCRATCH and "strategy" not in {
        *dimensions,
        *fixed,
    }:
        params["strategy"] = "full"
    return params
