"""The ``pricetune`` command: ``forecast``, ``fit`` and ``predict`` (your
own file), ``backtest``, ``demo`` and ``plugins``.

One module per command; :mod:`pricetune.cli.errors` turns every expected
failure into one line on stderr (exit 2: usage, 1: data or model), and
``--traceback`` shows the full trace instead.
"""

from __future__ import annotations

import sys
import warnings

from pricetune.cli import backtest, demo, forecast, plugins, tune
from pricetune.cli.backtest import DAILY_HISTORY, SUITE, SUITE_ABLATION_LAYERS
from pricetune.cli.errors import OneLineParser, report

__all__ = ["DAILY_HISTORY", "SUITE", "SUITE_ABLATION_LAYERS", "build_parser", "main"]


def _version() -> str:
    from pricetune import __version__

    return f"pricetune {__version__}"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="pricetune",
        description="Fine-tune pretrained models to forecast commodity prices.",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on failure, show the full traceback (for bug reports)",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=OneLineParser
    )
    forecast.add_parsers(commands)
    backtest.add_parser(commands)
    demo.add_parser(commands)
    plugins.add_parser(commands)
    tune.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --traceback is accepted anywhere on the line, not only before the command
    traceback = "--traceback" in argv
    argv = [item for item in argv if item != "--traceback"]
    args = build_parser().parse_args(argv)
    args.traceback = traceback
    try:
        with warnings.catch_warnings():
            # libraries' notices about their own future (sktime's
            # remember_data, pandas' deprecations) are not the command's output
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return args.run(args)
    except KeyboardInterrupt:
        print("pricetune: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.traceback:
            raise
        return report(error)


if __name__ == "__main__":
    sys.exit(main())
