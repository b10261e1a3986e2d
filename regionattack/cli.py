"""Command line: ``regionattack demo``, ``regionattack bench`` and ``regionattack map``.

``demo`` tells the story on a small model, ``bench`` benchmarks a model on a dataset, ``map``
draws its vulnerability map.

Radii are given in image units, as the Python API takes them: ``--eps 8/255`` or ``--eps 0.0314``.
"""

from __future__ import annotations

import argparse
import ast
import logging
import sys
import time
from collections.abc import Sequence

from regionattack._checks import check_radius
from regionattack.demo import DemoConfig, report, run_demo


def parse_size(text: str) -> tuple[int, int]:
    """``"176x240"`` -> ``(176, 240)``; both positive."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be HEIGHTxWIDTH, e.g. 96x128; got {text!r}"
        ) from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"height and width must be positive; got {text!r}")
    return height, width


def parse_floats(text: str) -> tuple[float, ...]:
    """``"0.485,0.456,0.406"`` -> a tuple of floats."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, e.g. 0.485,0.456,0.406; got {text!r}"
        ) from None


def parse_radius(text: str) -> float:
    """``"8/255"`` or ``"0.0314"`` -> an L-inf radius in [0, 1] (images in [0, 1]).

    Example:
        >>> round(parse_radius("8/255"), 4), parse_radius("0.03")
        (0.0314, 0.03)
    """
    numerator, slash, denominator = text.partition("/")
    try:
        value = float(numerator) / (float(denominator) if slash else 1.0)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"a radius is a number in [0, 1] or a fraction such as 8/255; got {text!r}"
        ) from None
    try:
        return check_radius(value, "eps")
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_radii(text: str) -> tuple[float, ...]:
    """``"2/255,4/255,8/255"`` -> radii in [0, 1] (see :func:`parse_radius`)."""
    return tuple(parse_radius(part) for part in text.split(","))


def positive_int(text: str) -> int:
    """An argparse type: an int >= 1 (a count, steps, a batch size).

    Example:
        >>> positive_int("3")
        3
    """
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """An argparse type: an int >= 0 (0 switches a part off, e.g. ``--map-grid 0``).

    Example:
        >>> nonnegative_int("0")
        0
    """
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}; got {value}")
    return value


def parse_option(text: str) -> tuple[str, object]:
    """``"name=value"`` -> ``(name, value)``; the value is a Python literal or else a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"options are NAME=VALUE; got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def add_option_argument(parser: argparse.ArgumentParser, what: str = "model") -> None:
    """Add the repeatable ``--option NAME=VALUE`` (a constructor option of the model) to ``parser``."""
    parser.add_argument(
        "--option",
        type=parse_option,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"constructor option of the {what}, repeatable (e.g. encoder_output_stride=16)",
    )


def _demo_size(text: str) -> tuple[int, int]:
    height, width = parse_size(text)
    if height < 16 or width < 16 or height % 16 or width % 16:
        raise argparse.ArgumentTypeError(
            f"height and width must be multiples of 16 (>= 16); got {text!r}"
        )
    return height, width


_RESUME = (
    "A rerun resumes only when the settings, the model's weights (a digest of its state dict) "
    "and the evaluated files (names and contents, hashed) are the same; anything else is "
    "refused, naming what differs. One process at a time per --out (a lock)."
)


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
        "--size", type=_demo_size, default=(96, 128), help="HEIGHTxWIDTH (default: 96x128)"
    )
    demo.add_argument("--train-images", type=positive_int, default=None, help="images to train on")
    demo.add_argument(
        "--eval-images",
        type=positive_int,
        default=None,
        help="images to rank channels on and evaluate (default: 48 synthetic, all 101 CamVid val)",
    )
    demo.add_argument(
        "--attack-images",
        type=positive_int,
        default=None,
        help=f"images to attack, at most --eval-images (default: {DemoConfig.attack_images})",
    )
    demo.add_argument(
        "--map-grid",
        type=nonnegative_int,
        default=DemoConfig.map_grid,
        help="vulnerability map over an NxN grid of the attacked images (0: none; default: 3)",
    )
    demo.add_argument("--steps", type=positive_int, default=DemoConfig.steps, help="training steps")
    demo.add_argument("--seed", type=nonnegative_int, default=0)
    demo.add_argument("--retrain", action="store_true", help="ignore the cached model")
    demo.add_argument("--quiet", action="store_true", help="print only the tables")
    _add_bench(commands)
    _add_map(commands)
    return parser


def _add_bench(commands) -> None:
    from regionattack.bench.runner import DEFAULT_ATTACKS, BenchConfig

    bench = commands.add_parser(
        "bench",
        help="benchmark a model: clean mIoU, channel ablation, region attacks, ranking fidelity",
        description="Resumable: rerun the same command to continue an interrupted run. Runs under "
        "torchrun --nproc_per_node=K (the images are sharded; the numbers equal one process). "
        + _RESUME,
    )
    _add_model_arguments(bench)
    bench.add_argument("--max-images", type=positive_int, help="evaluate the first N images")
    bench.add_argument(
        "--attack-images", type=positive_int, help="attack the first N (default: all)"
    )
    bench.add_argument("--batch-size", type=positive_int, default=BenchConfig.batch_size)
    bench.add_argument(
        "--eps",
        type=parse_radii,
        default=BenchConfig.eps,
        help="L-inf radii for images in [0, 1], comma-separated: 8/255 or 0.0314 "
        "(default: 2/255,4/255,8/255)",
    )
    bench.add_argument("--attack-steps", type=positive_int, default=BenchConfig.attack_steps)
    bench.add_argument(
        "--attacks",
        type=lambda text: tuple(text.split(",")),
        default=DEFAULT_ATTACKS,
        help=f"comma-separated registered attacks (default: {','.join(DEFAULT_ATTACKS)}; "
        "plug-ins installed in the entry-point group regionattack.attacks too); options in "
        "brackets joined by '+': an optimizer (CosPGD[apgd]), RegionAttack's objective "
        "(RegionAttack[channels+apgd]), SEA's losses (SEA[mce])",
    )
    bench.add_argument(
        "--attack-region", default="left", help="left, right, top, bottom, center, cell"
    )
    bench.add_argument("--random-draws", type=nonnegative_int, default=BenchConfig.random_draws)
    bench.add_argument(
        "--fidelity-channels",
        type=nonnegative_int,
        default=BenchConfig.fidelity_channels,
        help="channels zeroed one at a time for the fidelity experiment (0: skip)",
    )
    bench.add_argument("--seed", type=nonnegative_int, default=0)
    bench.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    bench.add_argument("--out", required=True, help="output folder")
    bench.add_argument("--quiet", action="store_true", help="no progress bars")


def _model_config(args: argparse.Namespace, **settings: object):
    """A ``BenchConfig`` with the model and data flags of ``args`` (``bench`` and ``map``)."""
    from regionattack.bench.runner import BenchConfig

    return BenchConfig(
        dataset=args.dataset,
        root=args.root,
        out=args.out,
        split=args.split,
        model=args.model,
        num_classes=args.num_classes,
        checkpoint=args.checkpoint,
        size=args.size,
        mean=args.mean,
        std=args.std,
        stride=args.stride,
        extra={"options": dict(args.option)} if args.option else {},
        **settings,
    )


def _run_bench(args: argparse.Namespace) -> int:
    from regionattack.bench.runner import run_benchmark

    config = _model_config(
        args,
        max_images=args.max_images,
        attack_images=args.attack_images,
        batch_size=args.batch_size,
        eps=args.eps,
        attack_steps=args.attack_steps,
        attacks=args.attacks,
        attack_region=args.attack_region,
        random_draws=args.random_draws,
        fidelity_channels=args.fidelity_channels,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    start = time.perf_counter()
    code = _guarded("bench", f"{args.out}/results.json", lambda: run_benchmark(config))
    if code == 0:
        print(
            f"wall time {time.perf_counter() - start:.1f} s; report.md and results.json in "
            f"{args.out}/"
        )
    return code


def _demo_config(args: argparse.Namespace) -> DemoConfig:
    """The demo's settings from its arguments, the defaults filled in for the chosen data.

    Raises:
        ValueError: For ``--root`` without ``--data camvid``, or more images to attack than to
            evaluate.
    """
    if args.root is not None and args.data != "camvid":
        raise ValueError(f"--root is read only with --data camvid (got --data {args.data})")
    defaults = DemoConfig()
    eval_images, train_images = args.eval_images, args.train_images
    if eval_images is None:
        eval_images = 101 if args.data == "camvid" else defaults.eval_images
    if train_images is None:
        train_images = 367 if args.data == "camvid" else defaults.train_images
    attack_images = args.attack_images
    if attack_images is None:
        attack_images = min(defaults.attack_images, eval_images)
    elif attack_images > eval_images:
        raise ValueError(
            f"--attack-images {attack_images} exceeds the {eval_images} evaluated images "
            "(--eval-images); the attacked images are the first evaluated ones"
        )
    return DemoConfig(
        data=args.data,
        root=args.root,
        size=args.size,
        train_images=train_images,
        eval_images=eval_images,
        attack_images=attack_images,
        map_grid=args.map_grid,
        steps=args.steps,
        seed=args.seed,
        progress=not args.quiet,
    )


def _run_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    made: dict = {}

    def work() -> None:
        made.update(results=run_demo(_demo_config(args), args.out, retrain=args.retrain))

    code = _guarded("demo", f"{args.out}/results.json", work)
    if code:
        return code
    print(report(made["results"]))
    print(
        f"\nwall time {time.perf_counter() - start:.1f} s; figures and results.json in {args.out}/"
    )
    return 0


def _guarded(command: str, results: str, work) -> int:
    """Run ``work()``; turn the errors a user can fix into one line and an exit code.

    0 when it finished; 2 for a bad argument, a missing file or extra, or an output folder in use
    by another process; 130 when interrupted (finished units stay in ``results``, and the same
    command resumes).
    """
    from regionattack.bench.lock import FolderInUse

    try:
        work()
    except (ValueError, FileNotFoundError, ImportError, FolderInUse) as error:
        print(f"regionattack {command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"regionattack {command}: interrupted; finished units are in {results}; run the "
            "same command again to resume",
            file=sys.stderr,
        )
        return 130
    return 0


def parse_grid(text: str) -> int | tuple[int, int]:
    """``"3"`` -> 3, ``"2x4"`` -> (2, 4) (rows x columns).

    Example:
        >>> parse_grid("3"), parse_grid("2x4")
        (3, (2, 4))
    """
    try:
        if "x" in text:
            rows, cols = text.lower().split("x")
            return positive_int(rows), positive_int(cols)
        return positive_int(text)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"expected N or ROWSxCOLS (each at least 1), got {text!r}"
        ) from None


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say which model and data to load, shared by ``bench`` and ``map``."""
    parser.add_argument("--dataset", choices=("camvid", "cityscapes", "voc"), required=True)
    parser.add_argument("--root", required=True, help="dataset folder")
    parser.add_argument("--split", default="val", help="split to evaluate (default: val)")
    parser.add_argument(
        "--model",
        help="smp:<Arch>:<encoder>, torchvision:<name> or paper:deeplabv3_resnet50 "
        "(default: the architecture recorded in --checkpoint)",
    )
    parser.add_argument("--num-classes", type=positive_int, help="classes of --model")
    add_option_argument(parser, "--model")
    parser.add_argument(
        "--checkpoint",
        help="weights: a state_dict, or a dict holding one under state_dict/model_state/model",
    )
    parser.add_argument("--size", type=parse_size, help="HEIGHTxWIDTH (default: the checkpoint's)")
    parser.add_argument("--mean", type=parse_floats, help="input normalisation mean")
    parser.add_argument("--std", type=parse_floats, help="input normalisation std")
    parser.add_argument("--stride", type=positive_int, default=16, help="the model's output stride")


def _add_map(commands) -> None:
    parser = commands.add_parser(
        "map",
        help="vulnerability map: break each cell of a grid in turn, keep the rest",
        description="Resumable: each finished cell is kept in OUT/map.json; rerun the same "
        "command to continue. Writes OUT/map.md (table) and OUT/map.png (heat maps). " + _RESUME,
    )
    _add_model_arguments(parser)
    parser.add_argument("--images", type=positive_int, default=32, help="map the first N images")
    parser.add_argument("--grid", type=parse_grid, default=3, help="N or ROWSxCOLS (default: 3)")
    parser.add_argument(
        "--attack",
        default="RegionAttack",
        help="a registered attack that breaks a region given per call, options in brackets "
        "(default: RegionAttack; e.g. CosPGD[apgd], SEA, or a plug-in)",
    )
    parser.add_argument("--eps", type=parse_radius, default=8 / 255, help="default: 8/255")
    parser.add_argument("--steps", type=positive_int, default=10)
    parser.add_argument("--k", type=positive_int, help="channels zeroed per cell (default: 5%%)")
    parser.add_argument("--no-channels", action="store_true", help="skip the channel drop")
    parser.add_argument(
        "--minimal-eps", action="store_true", help="also bisect each cell's smallest breaking eps"
    )
    parser.add_argument("--eps-max", type=parse_radius, default=32 / 255, help="default: 32/255")
    parser.add_argument(
        "--break-fraction", type=float, default=0.5, help="of a cell's pixels (default: 0.5)"
    )
    parser.add_argument(
        "--max-outside",
        type=float,
        default=0.01,
        help="of the other pixels that may change at the minimal eps (default: 0.01; 1: no limit)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_map(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    made: dict = {}
    code = _guarded("map", f"{args.out}/map.json", lambda: made.update(_map(args)))
    if code:
        return code
    vmap = made["map"]
    print(vmap.table())
    drops = vmap.miou_drop.flatten().tolist()
    weakest = [cell for cell in vmap.weakest("miou_drop") if drops[cell] == drops[cell]][:3]
    print(
        f"weakest cells by mIoU drop: {weakest or 'none (no cell has valid pixels)'}; "
        f"measures: {', '.join(vmap.measures())}"
    )
    print(
        f"wall time {time.perf_counter() - start:.1f} s; map.json, map.md and map.png in {args.out}/"
    )
    return 0


def _map(args: argparse.Namespace) -> dict:
    """The vulnerability map of ``regionattack map``: one unit per cell, in the locked ``--out``."""
    import torch

    from regionattack._checks import state_digest
    from regionattack.attacks.registry import parse_region_attack_name
    from regionattack.bench.identity import data_identity
    from regionattack.bench.run import Run
    from regionattack.bench.runner import load_model
    from regionattack.data import check_size_divisible, load_dataset
    from regionattack.maps import Mapper, map_cells

    parse_region_attack_name(args.attack)
    config = _model_config(args)
    config.validate_sources()
    with Run(args.out) as run:
        model, meta = load_model(config)
        size = args.size or meta.get("size")
        if size is None:
            raise ValueError("give --size HEIGHTxWIDTH (the checkpoint does not record one)")
        size = check_size_divisible(tuple(size), args.stride)
        dataset = load_dataset(args.dataset, args.root, args.split, size=size)
        count = min(args.images, len(dataset))
        pairs = [dataset[i] for i in range(count)]
        images = torch.stack([image for image, _ in pairs])
        labels = torch.stack([label for _, label in pairs])
        cells, shape = map_cells(args.grid, size)
        settings = {
            "attack": args.attack, "eps": args.eps, "steps": args.steps, "seed": args.seed,
            "k": args.k, "channels": not args.no_channels, "batch_size": args.batch_size,
            "grid": list(shape), "images": count, "labels": True,
            "minimal_eps": args.minimal_eps,
            "eps_max": args.eps_max if args.minimal_eps else None,
            "break_fraction": args.break_fraction if args.minimal_eps else None,
            "max_outside": args.max_outside if args.minimal_eps else None,
        }  # fmt: skip
        fingerprint = {
            **settings,
            "size": list(size),
            "data": data_identity(dataset, count),
            "model_state": state_digest(model),
        }
        store = run.results(fingerprint, name="map.json")
        mapper = Mapper(
            model, images, grid=args.grid, labels=labels, attack=args.attack, eps=args.eps,
            steps=args.steps, channels=not args.no_channels, k=args.k, seed=args.seed,
            batch_size=args.batch_size, progress=not args.quiet, minimal_eps=args.minimal_eps,
            eps_max=args.eps_max, break_fraction=args.break_fraction,
            max_outside=args.max_outside,
        )  # fmt: skip
        vmap = mapper.by_units(store.unit, settings)
        vmap.save(args.out, images[0])
    return {"map": vmap}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``regionattack`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.command == "bench":
        return _run_bench(args)
    if args.command == "map":
        return _run_map(args)
    if args.command == "demo":
        return _run_demo(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
