"""Evaluate defended models side by side: position probe, channel zeroing, region attacks, PGD.

Each ``--checkpoint NAME=FILE`` is a checkpoint written by ``benchmarks/train.py`` (the model is
rebuilt from its metadata, including a ``--padding`` conversion). All models are evaluated on the
same images of one dataset split with :func:`regionattack.bench.evaluate_defense`; the folder
``--out`` receives ``results.json`` (rewritten after every finished unit, so an interrupted run
resumes where it stopped), ``report.md`` and ``defenses.png``. Example (docs/results/defenses.md)::

    python benchmarks/defenses.py --dataset camvid --root ../shared/data/camvid --split val \\
        --checkpoint baseline=checkpoints/defenses/camvid-baseline.pt \\
        --checkpoint augshift=checkpoints/defenses/camvid-augshift.pt \\
        --attack-images 32 --out bench-defenses
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from regionattack.attacks import ATTACKS, parse_attack_name
from regionattack.bench.defense import DEFENSE_ATTACKS, evaluate_defense
from regionattack.bench.region_names import REGION_NAMES
from regionattack.cli import parse_radius, parse_size
from regionattack.data import DATASETS, check_size_divisible, load_dataset
from regionattack.models import build_from_checkpoint


def parse_named_path(text: str) -> tuple[str, str]:
    """``"name=path"`` -> ``(name, path)``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE (NAME without '/'); got {text!r}")
    return name, path


def parse_attack(text: str) -> str:
    """An attack name of the suite, options in brackets allowed (``CosPGD[apgd]``, ``SEA``)."""
    try:
        parse_attack_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``benchmarks/defenses.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument("--root", required=True, help="dataset folder")
    parser.add_argument("--split", default="val")
    parser.add_argument(
        "--checkpoint",
        type=parse_named_path,
        action="append",
        required=True,
        metavar="NAME=FILE",
        help="a model to evaluate, repeatable",
    )
    parser.add_argument("--size", type=parse_size, default=None, help="default: the checkpoints'")
    parser.add_argument("--stride", type=int, default=16, help="the models' output stride")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--attack-images", type=int, default=None)
    parser.add_argument("--probe-images", type=int, default=64)
    parser.add_argument(
        "--attacks",
        nargs="+",
        type=parse_attack,
        default=list(DEFENSE_ATTACKS),
        help=f"any of {' '.join(ATTACKS)}; options in brackets joined by '+' (CosPGD[apgd], "
        "RegionAttack[channels+apgd], SEA[mce])",
    )
    parser.add_argument(
        "--eps",
        type=parse_radius,
        nargs="+",
        default=[2 / 255, 4 / 255, 8 / 255],
        help="L-inf radii for images in [0, 1]: 8/255 or 0.0314 (default: 2/255 4/255 8/255)",
    )
    parser.add_argument("--region", choices=REGION_NAMES, default="left")
    parser.add_argument("--attack-steps", type=int, default=10)
    parser.add_argument("--k-fraction", type=float, default=0.05)
    parser.add_argument("--random-draws", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Load the models, evaluate them, write the results; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    try:
        models, sizes = {}, set()
        for name, path in args.checkpoint:
            if name in models:
                raise ValueError(f"two checkpoints are named {name!r}")
            models[name], meta = build_from_checkpoint(path)
            models[name].to(args.device)
            sizes.add(tuple(meta.get("size", ())))
        if args.size is None and len(sizes) != 1:
            raise ValueError(
                f"the checkpoints were trained at different sizes {sorted(sizes)}; give --size"
            )
        size = check_size_divisible(args.size or sizes.pop(), args.stride)
        dataset = load_dataset(
            args.dataset, args.root, args.split, size=size, max_images=args.max_images
        )
        report = evaluate_defense(
            models,
            dataset,
            attacks=args.attacks,
            eps=args.eps,
            region=args.region,
            steps=args.attack_steps,
            k_fraction=args.k_fraction,
            random_draws=args.random_draws,
            attack_images=args.attack_images,
            probe_images=min(args.probe_images, len(dataset)),
            batch_size=args.batch_size,
            seed=args.seed,
            out=args.out,
            progress=not args.quiet,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"defenses: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ndefenses: interrupted; finished units are in {Path(args.out) / 'results.json'}; "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    print(report.table())
    print(json.dumps({"seconds": round(time.perf_counter() - start, 1), "out": args.out}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
