"""Registries of named components (backbones, heads, strategies).

Plugins add classes to a :class:`ComponentRegistry` from their
``register_<kind>s(registry)`` hook; the forecaster looks them up by name at
``fit`` time. This module imports nothing heavy.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass

KINDS = ("backbone", "head", "strategy", "augmentation")
_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")


class UnknownComponentError(ValueError):
    """A component name that no installed plugin registered."""


def plural(kind: str) -> str:
    """``strategies``, ``backbones``, ``heads``: a component kind's plural."""
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "s"


def shown_name(component) -> str:
    """A backbone's, head's or strategy's name for tables and progress bars:
    its registered name, or a component class's ``__name__``."""
    return getattr(component, "__name__", component)


@dataclass(frozen=True)
class ComponentInfo:
    """One registered component and where it came from."""

    kind: str
    name: str
    cls: type
    plugin: str = "?"
    distribution: str = "?"
    version: str = "?"

    @property
    def class_path(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


class ComponentRegistry:
    """Component classes of one kind, stored under short lower-case names.

    Hooks receive an instance and call :meth:`add`; users see the result
    through :func:`pricetune.plugins.get_registry` or ``pricetune plugins``.
    """

    def __init__(self, kind: str):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self._components: dict[str, ComponentInfo] = {}

    def add(self, name: str, cls: type) -> None:
        """Register ``cls`` under ``name`` (lower case, e.g. ``"lstm"``)."""
        if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"{self.kind} name must be lower-case letters, digits, '_', '-' "
                f"or '.', starting with a letter or digit; got {name!r}"
            )
        if not isinstance(cls, type):
            raise TypeError(
                f"{self.kind} {name!r} must be registered as a class, got {cls!r}"
            )
        if name in self._components:
            raise ValueError(
                f"{self.kind} {name!r} is already registered by "
                f"{self._components[name].class_path}"
            )
        self._components[name] = ComponentInfo(self.kind, name, cls)

    def get(self, name: str) -> type:
        """Return the class registered under ``name``.

        Raises
        ------
        UnknownComponentError
            naming the known components and the closest match.
        """
        return self.info(name).cls

    def info(self, name: str) -> ComponentInfo:
        """Return the :class:`ComponentInfo` registered under ``name``."""
        try:
            return self._components[name]
        except (KeyError, TypeError):
            raise UnknownComponentError(self._unknown_message(name)) from None

    def _unknown_message(self, name: object) -> str:
        known = sorted(self._components)
        message = f"unknown {self.kind} {name!r}; known {plural(self.kind)}: " + (
            ", ".join(known) if known else "(none registered)"
        )
        if isinstance(name, str):
            close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.5)
            if close:
                message += f". Did you mean {close[0]!r}?"
        return message

    def merge(self, other: ComponentRegistry, **provenance: str) -> list[str]:
        """Copy ``other``'s components in, tagged with ``provenance``.

        Returns the names that were skipped because they already exist here.
        """
        clashes = []
        for name, info in other._components.items():
            if name in self._components:
                clashes.append(name)
                continue
            self._components[name] = ComponentInfo(
                self.kind, name, info.cls, **provenance
            )
        return clashes

    def names(self) -> list[str]:
        return sorted(self._components)

    def __contains__(self, name: object) -> bool:
        return name in self._components

    def __iter__(self) -> Iterator[ComponentInfo]:
        return iter(self._components[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._components)

    def __repr__(self) -> str:
        return f"ComponentRegistry({self.kind!r}, {self.names()})"
