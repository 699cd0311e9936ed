"""The module the ``pricetune`` entry point names: registers the backbones."""

from __future__ import annotations

import pricetune

PRICETUNE_PLUGIN_API = "1.0"


@pricetune.hookimpl
def register_backbones(registry):
    from pricetune_tstransformers.backbones import (
        ChronosBackbone,
        ChronosBoltBackbone,
        PatchTSMixerBackbone,
        PatchTSTBackbone,
        TimesFmBackbone,
    )

    registry.add("patchtst", PatchTSTBackbone)
    registry.add("patchtsmixer", PatchTSMixerBackbone)
    registry.add("timesfm", TimesFmBackbone)
    registry.add("chronos", ChronosBackbone)
    registry.add("chronos-bolt", ChronosBoltBackbone)
