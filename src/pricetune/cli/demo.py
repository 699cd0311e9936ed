"""``pricetune demo``: train the default forecaster on monthly Brent and
compare it with the no-change forecast and AutoARIMA."""

from __future__ import annotations

import argparse


def run_demo_command(args: argparse.Namespace) -> int:
    from pricetune.demo import plot_demo, run_demo

    params = {}
    if args.quick and args.max_epochs is None:
        # a smoke run: the same pipeline with few epochs (--max-epochs, when
        # given, still wins)
        params["max_epochs"] = 3
    result = run_demo(
        holdout=args.holdout,
        max_epochs=args.max_epochs,
        random_state=args.seed,
        device=args.device,
        verbose=0 if args.no_progress else 1,
        forecaster_params=params,
    )
    train, test = result.y_train.index, result.y_test.index
    print(
        f"\nBrent monthly: trained on {train[0]}..{train[-1]}, "
        f"tested on the {len(test)} months to {test[-1]}\n"
    )
    print(result.table.to_string(float_format=lambda v: f"{v:.3f}"))
    for note in result.notes:
        print(f"note: {note}")
    path = plot_demo(result, args.output)
    print(f"\nplot written to {path}")
    return 0


def add_parser(commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="train the default on monthly Brent; compare with naive and AutoARIMA",
    )
    demo.add_argument("--holdout", type=int, default=12, help="months held out (12)")
    demo.add_argument(
        "--max-epochs", type=int, default=None, help="default: 30 (--quick: 3)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (0)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda...")
    demo.add_argument("--output", default="pricetune-demo.png", help="PNG plot path")
    demo.add_argument("--quick", action="store_true", help="3 epochs")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(run=run_demo_command)
