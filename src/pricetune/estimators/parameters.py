"""The estimators' parameters, declared once: by the fields of
:class:`~pricetune.training.config.TrainingConfig`.

:func:`training_parameters` gives an estimator class its ``__init__`` and
the "Parameters" section of its docstring from those fields. scikit-learn
and sktime read an estimator's parameters from its ``__init__`` signature
and want ``__init__`` to store them and do nothing else; the generated
``__init__`` is exactly that (``self.backbone = backbone``, ...), with a
real signature that ``inspect``, ``help()`` and ``clone`` see. Writing the
34 parameters out by hand in each estimator is what made one new option
touch eight places.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import fields

from pricetune.training.config import TrainingConfig

#: the line of a class docstring that the parameters' documentation replaces
PLACEHOLDER = "{parameters}"


def training_parameters(*, exclude=(), defaults=None, docs=None):
    """A class decorator: the class takes every field of
    :class:`~pricetune.training.config.TrainingConfig` but those in
    ``exclude`` as its parameters, in the fields' order.

    ``defaults`` overrides some fields' defaults, and ``docs`` some of
    their documentation (``{name: (type, text)}``), for estimators whose
    parameters mean something else (the regressor's ``context_length``
    counts columns). The generated ``__init__`` stores each parameter and
    then calls the class's ``_init_base(self)`` if it has one (the
    forecaster sets up sktime's base class and its tags there). The line
    ``{parameters}`` of the class docstring becomes the parameters'
    numpydoc section.
    """
    defaults = dict(defaults or {})
    docs = dict(docs or {})

    def decorate(cls):
        specs = [spec for spec in fields(TrainingConfig) if spec.name not in exclude]
        names = [spec.name for spec in specs]
        unknown = sorted((set(defaults) | set(docs)) - set(names))
        if unknown:
            raise TypeError(f"{cls.__name__}: no such parameters {unknown}")
        values = {spec.name: defaults.get(spec.name, spec.default) for spec in specs}
        cls.__init__ = _make_init(cls, names, values)
        if cls.__doc__ and PLACEHOLDER in cls.__doc__:
            section = _render(specs, values, docs)
            cls.__doc__ = cls.__doc__.replace(f"    {PLACEHOLDER}\n", section)
        return cls

    return decorate


#: parameters added since 0.1.0 whose default would change what an older
#: fit computes: the value that keeps it as it was (pickles and safe saves
#: of 0.1.0 get it). Parameters whose default keeps old fits as they were
#: (``callbacks=None``) need no entry.
LEGACY_VALUES: dict[str, object] = {
    "min_scale": 1e-6,
    "steps_per_epoch": None,
    "max_validation_windows": None,
    "linear_baseline": False,
    "shrinkage": 0.0,
}


def with_missing_parameters(cls, params: dict) -> dict:
    """``params`` (a pickled instance's attributes, or a safe save's
    parameters) with every parameter of ``cls`` it lacks: one added after
    it was saved, at its :data:`LEGACY_VALUES` entry or its default."""
    signature = inspect.signature(cls.__init__)
    missing = {
        name: LEGACY_VALUES.get(name, parameter.default)
        for name, parameter in signature.parameters.items()
        if name != "self" and name not in params
    }
    return {**params, **missing}


def _make_init(cls, names: list[str], values: dict):
    arguments = ", ".join(f"{name}=__defaults[{name!r}]" for name in names)
    body = [f"    self.{name} = {name}" for name in names]
    if hasattr(cls, "_init_base"):
        body.append("    __cls._init_base(self)")
    source = f"def __init__(self, {arguments}):\n" + "\n".join(body) + "\n"
    namespace = {"__defaults": values, "__cls": cls}
    # generated like dataclasses' __init__: a plain function with a real
    # signature, so that inspect (scikit-learn's get_params) reads it
    exec(compile(source, f"<{cls.__qualname__}.__init__>", "exec"), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = f"Store the parameters; see :class:`{cls.__name__}`."
    return init


def _render(specs, values: dict, docs: dict) -> str:
    lines = ["    Parameters", "    ----------"]
    for spec in specs:
        kind, text = docs.get(spec.name, (spec.metadata["type"], spec.metadata["doc"]))
        header = f"{spec.name} : {kind}"
        if not kind.endswith("optional"):
            header += f", default {_shown(values[spec.name])}"
        lines.append(f"    {header}")
        if text:
            lines.extend(
                textwrap.indent(textwrap.dedent(text).strip(), " " * 8).splitlines()
            )
    return "\n".join(lines) + "\n"


def _shown(value) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)
