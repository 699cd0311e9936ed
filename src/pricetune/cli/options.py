"""Options more than one command takes, defined once."""

from __future__ import annotations

# pricetune.reading.POLICIES, spelled out: importing the reader (pandas)
# would slow every command's start, --help included
MISSING_POLICIES = ("fill", "drop", "error")


def add_missing_option(parser) -> None:
    """``--missing``: the reader's policy for a file's missing values."""
    parser.add_argument(
        "--missing",
        choices=MISSING_POLICIES,
        default="fill",
        help="a file's missing values: fill (carry the last price forward; "
        "default), drop (keep only what follows a series' last gap) or error",
    )


def add_data_file_options(parser) -> None:
    """``--frequency`` and ``--missing`` of the commands that read
    ``--data`` (dataset names or a file): ``backtest`` and ``tune``."""
    parser.add_argument(
        "--frequency",
        "--freq",
        dest="frequency",
        default=None,
        help="monthly, weekly, daily...: of the dataset names, or overriding "
        "the one inferred from a file",
    )
    add_missing_option(parser)
