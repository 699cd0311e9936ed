"""pricetune-tstransformers: backbones from transformers' time-series models.

Installing this distribution registers, through the ``pricetune`` entry-point
group:

* backbone ``"patchtst"``: :class:`.backbones.PatchTSTBackbone`
* backbone ``"patchtsmixer"``: :class:`.backbones.PatchTSMixerBackbone`
* backbone ``"timesfm"``: :class:`.backbones.TimesFmBackbone`
* backbone ``"chronos"``: :class:`.backbones.ChronosBackbone`
* backbone ``"chronos-bolt"``: :class:`.backbones.ChronosBoltBackbone`

Importing this package is cheap; transformers loads when a backbone is built.
"""

__version__ = "0.1.0"
