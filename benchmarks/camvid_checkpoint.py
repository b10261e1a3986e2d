"""What the CamVid scripts share: a checkpoint of benchmarks/train.py and the first images of a split."""

from __future__ import annotations

import argparse
import statistics
from typing import NamedTuple

from torch import nn
from torch.utils.data import Dataset, Subset

from regionattack.data import load_dataset
from regionattack.models import build_from_checkpoint


class CheckpointImages(NamedTuple):
    """The model (eval mode), its input size, the split and its first ``count`` images."""

    model: nn.Module
    size: tuple[int, int]
    dataset: Dataset
    count: int
    images: Subset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint``, ``--root``, ``--split`` (val) and ``--images`` (32)."""
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--images", type=int, default=32)


def int_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``."""
    return [int(value) for value in text.split(",")]


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """``--batch-size`` (16), ``--eps`` (8/255), ``--steps`` (10) and ``--seeds`` (0): a sweep's axes."""
    from regionattack.cli import parse_radii

    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eps", type=parse_radii, default=(8 / 255,), help="e.g. 2/255,8/255")
    parser.add_argument("--steps", type=int_list, default=[10], help="e.g. 10,100")
    parser.add_argument("--seeds", type=int_list, default=[0], help="e.g. 0,1,2")


def mean_and_spread(rows: list[dict], names: tuple[str, ...]) -> dict[str, float]:
    """``{"seeds": len(rows), name: mean, name_std: population std}`` of each name the rows hold.

    Example:
        >>> summary = mean_and_spread([{"a": 0.2}, {"a": 0.4}, {"a": None}], ("a", "b"))
        >>> {name: round(value, 6) for name, value in summary.items()}
        {'seeds': 3, 'a': 0.3, 'a_std': 0.1}
    """
    summary: dict[str, float] = {"seeds": len(rows)}
    for name in names:
        values = [row[name] for row in rows if row.get(name) is not None]
        if values:
            summary[name] = statistics.fmean(values)
            summary[f"{name}_std"] = statistics.pstdev(values)
    return summary


def load(args: argparse.Namespace) -> CheckpointImages:
    """The checkpoint's model and the first ``args.images`` images of ``args.split`` at its size."""
    model, meta = build_from_checkpoint(args.checkpoint)
    size = tuple(meta["size"])
    dataset = load_dataset("camvid", args.root, args.split, size=size)
    count = min(args.images, len(dataset))
    return CheckpointImages(model.eval(), size, dataset, count, Subset(dataset, range(count)))
