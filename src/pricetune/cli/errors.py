"""How the command line fails: one line on stderr, ``pricetune: error:
...``, and exit status 2 for a usage error (a bad flag or value), 1 for
data or a model that cannot be used. ``--traceback`` re-raises instead,
for bug reports."""

from __future__ import annotations

import argparse
import sys

USAGE = 2
FAILURE = 1


class CommandError(Exception):
    """An expected failure of a command, with the one-line message to show
    and the exit status (``USAGE`` or ``FAILURE``)."""

    def __init__(self, message: str, status: int = FAILURE):
        super().__init__(message)
        self.status = status


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage text is one
    ``--help`` away) and exits ``USAGE``."""

    def error(self, message):
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# what data, files, settings and missing optional packages raise: shown as
# one line; anything else is a bug, shown as one line too, with the hint
EXPECTED = (
    CommandError,
    ValueError,
    TypeError,
    KeyError,
    OSError,
    ImportError,
    RuntimeError,
)


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])
    return text.splitlines()[0] if text else type(error).__name__


def report(error: BaseException) -> int:
    """Print ``error`` as one line on stderr; the exit status."""
    if isinstance(error, EXPECTED):
        status = error.status if isinstance(error, CommandError) else FAILURE
        print(f"pricetune: error: {one_line(error)}", file=sys.stderr)
        return status
    print(
        f"pricetune: error: {type(error).__name__}: {one_line(error)} "
        "(an unexpected failure: rerun with --traceback and report it)",
        file=sys.stderr,
    )
    return FAILURE
