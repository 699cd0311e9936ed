"""The hooks a pricetune plugin implements.

A plugin is a module (or any object) with functions decorated by
:data:`hookimpl` whose names match the specifications below. Third-party
plugins are found through the ``pricetune`` entry-point group::

    [project.entry-points.pricetune]
    my_plugin = "my_package.plugin"

Every hook receives a :class:`~pricetune.registry.ComponentRegistry` for one
kind of component and adds classes to it under short names::

    from pricetune import hookimpl

    @hookimpl
    def register_backbones(registry):
        registry.add("my-backbone", MyBackbone)

The component contracts (constructor arguments, shapes, attributes) are in
:mod:`pricetune.components.contract`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pricetune.registry import ComponentRegistry

PROJECT_NAME = "pricetune"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_backbones(registry: ComponentRegistry) -> None:
    """Add backbone classes to ``registry`` with ``registry.add(name, cls)``.

    A backbone is a :class:`torch.nn.Module` that maps patches of the
    normalised series, shape ``(batch, n_patches, patch_length)``, to hidden
    states, shape ``(batch, n_patches, hidden_size)``. See
    :class:`pricetune.components.contract.Backbone`.
    """


@hookspec
def register_heads(registry: ComponentRegistry) -> None:
    """Add head classes to ``registry`` with ``registry.add(name, cls)``.

    A head is a :class:`torch.nn.Module` that maps hidden states, shape
    ``(batch, n_patches, hidden_size)``, to the forecast, shape
    ``(batch, horizon, n_outputs)``, and owns its training loss. See
    :class:`pricetune.components.contract.Head`.
    """


@hookspec
def register_strategies(registry: ComponentRegistry) -> None:
    """Add fine-tuning strategy classes to ``registry`` with ``registry.add``.

    A strategy decides which parameters of an assembled model train, and may
    wrap parts of it (as PEFT methods do). See
    :class:`pricetune.components.contract.Strategy`.
    """
