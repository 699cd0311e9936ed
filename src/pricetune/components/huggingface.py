"""Helpers for components built on local Hugging Face checkpoints, public
for plugin authors: pricetune's own ``hf`` and ``minilm`` backbones use them,
and so can a plugin's.

Nothing here downloads anything; transformers is imported when a helper is
called, not when this module is imported.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' notes about unused weights when layers are cut,
    and its per-tensor loading bar (pricetune shows its own progress)."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()
