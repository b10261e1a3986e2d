"""Command line: ``regionattack demo``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from regionattack.demo import DemoConfig, report, run_demo


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be HEIGHTxWIDTH, e.g. 96x128; got {text!r}"
        ) from None
    if height < 16 or width < 16 or height % 16 or width % 16:
        raise argparse.ArgumentTypeError(
            f"height and width must be multiples of 16 (>= 16); got {text!r}"
        )
    return height, width


def build_parser() -> argparse.ArgumentParser:
    """The ``regionattack`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="regionattack",
        description="Find and attack the channels that encode position in segmentation networks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train a small model (cached), rank channels, ablate them and attack the left half",
        description="Runs with no data and no downloads (synthetic street scenes) or on CamVid.",
    )
    demo.add_argument("--data", choices=("synthetic", "camvid"), default="synthetic")
    demo.add_argument("--root", help="CamVid folder in the SegNet layout (with --data camvid)")
    demo.add_argument(
        "--out", default="regionattack-demo", help="output folder (default: %(default)s)"
    )
    demo.add_argument(
        "--size", type=_size, default=(96, 128), help="HEIGHTxWIDTH (default: 96x128)"
    )
    demo.add_argument("--train-images", type=int, default=None, help="images to train on")
    demo.add_argument(
        "--eval-images",
        type=int,
        default=None,
        help="images to rank channels on and evaluate (default: 48 synthetic, all 101 CamVid val)",
    )
    demo.add_argument(
        "--attack-images", type=int, default=DemoConfig.attack_images, help="images to attack"
    )
    demo.add_argument("--steps", type=int, default=DemoConfig.steps, help="training steps")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--retrain", action="store_true", help="ignore the cached model")
    demo.add_argument("--quiet", action="store_true", help="print only the tables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``regionattack`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.command == "demo":
        defaults = DemoConfig()
        eval_images = args.eval_images or (101 if args.data == "camvid" else defaults.eval_images)
        train_images = args.train_images or (
            367 if args.data == "camvid" else defaults.train_images
        )
        config = DemoConfig(
            data=args.data,
            root=args.root,
            size=args.size,
            train_images=train_images,
            eval_images=eval_images,
            attack_images=min(args.attack_images, eval_images),
            steps=args.steps,
            seed=args.seed,
        )
        start = time.perf_counter()
        try:
            results = run_demo(config, args.out, retrain=args.retrain)
        except (ValueError, FileNotFoundError) as error:
            print(f"regionattack demo: error: {error}", file=sys.stderr)
            return 2
        print(report(results))
        print(
            f"\nwall time {time.perf_counter() - start:.1f} s; figures and results.json in {args.out}/"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
