"""The module the ``pricetune`` entry point names.

pricetune imports it, checks ``PRICETUNE_PLUGIN_API``, finds the functions
marked with ``@pricetune.hookimpl`` and calls each with a registry for one
kind of component. Keep this module small and cheap to import: the component
classes live in :mod:`pricetune_example.components` and are imported inside
the hooks.
"""

from __future__ import annotations

import pricetune

# The plugin API version this plugin is written for. pricetune skips the
# plugin, with a message, when its own plugin API has another major version
# (or an older minor one): see pricetune's docs/plugins.md.
PRICETUNE_PLUGIN_API = "1.0"


@pricetune.hookimpl
def register_backbones(registry):
    from pricetune_example.components import ExampleMLPBackbone

    registry.add("example-mlp", ExampleMLPBackbone)


@pricetune.hookimpl
def register_heads(registry):
    from pricetune_example.components import ExampleMeanPoolHead

    registry.add("example-mean-pool", ExampleMeanPoolHead)


@pricetune.hookimpl
def register_strategies(registry):
    from pricetune_example.components import ExampleHeadOnly

    registry.add("example-head-only", ExampleHeadOnly)
