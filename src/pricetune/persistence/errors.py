"""What saving and loading raise and warn."""

from __future__ import annotations


class PersistenceError(ValueError):
    """A save that cannot be written, or a directory that cannot be loaded."""


class MissingComponentError(PersistenceError):
    """A saved model needs a component that no installed plugin provides."""


class BaseWeightsError(PersistenceError):
    """The base weights a save left out (the pretrained weights, and what
    training left as it was built) differ from those the installed
    components build: another version of the weights package, say."""


class PersistenceWarning(UserWarning):
    """Something differs between where a model was saved and where it loads."""
