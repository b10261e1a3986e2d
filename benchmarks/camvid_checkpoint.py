"""What the CamVid scripts share: a checkpoint of benchmarks/train.py and the first images of a split."""

from __future__ import annotations

import argparse
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


def load(args: argparse.Namespace) -> CheckpointImages:
    """The checkpoint's model and the first ``args.images`` images of ``args.split`` at its size."""
    model, meta = build_from_checkpoint(args.checkpoint)
    size = tuple(meta["size"])
    dataset = load_dataset("camvid", args.root, args.split, size=size)
    count = min(args.images, len(dataset))
    return CheckpointImages(model.eval(), size, dataset, count, Subset(dataset, range(count)))
