"""The hooks a pricetune plugin implements, and the plugin API version.

A plugin is a module (or any object) with functions decorated by
:data:`hookimpl` whose names match the specifications below. Third-party
plugins are found through the ``pricetune`` entry-point group::

    [project.entry-points.pricetune]
    my_plugin = "my_package.plugin"

Every hook receives a :class:`~pricetune.registry.ComponentRegistry` for one
kind of component and adds classes to it under short names::

    from pricetune import hookimpl

    PRICETUNE_PLUGIN_API = "1.0"  # the plugin API version this plugin targets

    @hookimpl
    def register_backbones(registry):
        registry.add("my-backbone", MyBackbone)

The component contracts (constructor arguments, shapes, attributes) are in
:mod:`pricetune.components.contract`. ``docs/hooks.md`` is generated from this
module (``python docs/_hooks/hookdocs.py --write``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pricetune.registry import ComponentRegistry

PROJECT_NAME = "pricetune"

#: The version of the plugin API (these hooks and the component contracts),
#: ``"MAJOR.MINOR"``. A minor release only adds (a new hook, an optional
#: method); a major release may remove or change something. A plugin declares
#: the version it was written for in the module its entry point names::
#:
#:     PRICETUNE_PLUGIN_API = "1.0"
#:
#: and is skipped, with a message saying why, when its major version differs
#: from this one or its minor version is newer.
PLUGIN_API_VERSION = "1.0"

#: The module attribute in which a plugin declares :data:`PLUGIN_API_VERSION`.
PLUGIN_API_ATTRIBUTE = "PRICETUNE_PLUGIN_API"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_backbones(registry: ComponentRegistry) -> None:
    """Add backbone classes to ``registry`` with ``registry.add(name, cls)``.

    A backbone is a :class:`torch.nn.Module` that maps patches of the
    normalised series, shape ``(batch, n_patches, patch_length)``, to hidden
    states, shape ``(batch, n_patches, hidden_size)``. It is built as
    ``cls(patch_length=..., n_patches=..., **backbone_kwargs)`` and has the
    attributes ``hidden_size``, ``embedding`` and ``body``. See
    :class:`pricetune.components.contract.Backbone`.

    Called once per process, the first time any component is looked up.
    Import heavy modules (torch, transformers) inside this function, not at
    the top of the plugin module, so that listing plugins stays fast.
    """


@hookspec
def register_heads(registry: ComponentRegistry) -> None:
    """Add head classes to ``registry`` with ``registry.add(name, cls)``.

    A head is a :class:`torch.nn.Module` that maps hidden states, shape
    ``(batch, n_patches, hidden_size)``, to the forecast, shape
    ``(batch, horizon, n_outputs)``, and owns its training loss. It is built
    as ``cls(hidden_size=..., n_patches=..., horizon=..., **head_kwargs)``.
    See :class:`pricetune.components.contract.Head`.

    Called once per process, the first time any component is looked up.
    """


@hookspec
def register_strategies(registry: ComponentRegistry) -> None:
    """Add fine-tuning strategy classes to ``registry`` with ``registry.add``.

    A strategy decides which parameters of an assembled model train, and may
    wrap parts of it (as PEFT methods do). It is built as
    ``cls(**strategy_kwargs)``; its ``apply(model)`` runs once before the
    optimiser is created. See :class:`pricetune.components.contract.Strategy`.

    Called once per process, the first time any component is looked up.
    """


@hookspec
def register_augmentations(registry: ComponentRegistry) -> None:
    """Add augmentation classes to ``registry`` with ``registry.add``.

    An augmentation transforms a batch of training windows in raw units,
    ``(context, target) -> (context, target)``, before the model normalises
    them; validation and prediction inputs are never augmented. It is built
    as ``cls(**kwargs)`` from the estimators' ``augmentations`` parameter
    (``["name", ("name", {...})]``). See
    :class:`pricetune.components.contract.Augmentation`.

    Called once per process, the first time any component is looked up.
    """
