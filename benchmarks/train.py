"""Train a segmentation model on CamVid, Cityscapes or PASCAL VOC and save a checkpoint.

The checkpoint holds the weights of the bare model and the metadata the benchmark needs to rebuild
it (architecture, options, classes, input size, mean/std), so ``regionattack bench --checkpoint
FILE`` needs no other model flags. Example (the CamVid model of docs/results/camvid.md)::

    python benchmarks/train.py --dataset camvid --root ../shared/data/camvid \\
        --model smp:DeepLabV3:resnet18 --option encoder_output_stride=16 \\
        --option decoder_channels=64 --option "decoder_atrous_rates=(2, 4, 6)" \\
        --size 176x240 --steps 600 --out checkpoints/camvid-deeplabv3-r18.pt

A Hugging Face SegFormer (MiT-b0 sizes, ``pip install 'regionattack[hf]'``) trains the same way
with ``--model hf:segformer --stride 4``: its logits are at 1/4 of the input and are upsampled
to the labels' size for the loss and the evaluation.

Images are resized to ``--size`` (no crops) and drawn at random with replacement; the loss is
cross-entropy with 255 ignored; AdamW with warm-up and a cosine schedule. Horizontal flips are off
unless ``--hflip`` is given: they teach the network that left and right are interchangeable, which
weakens the position information this library studies; ``--scale 0.75,1.25`` adds scale jitter. The
checkpoint is written atomically at the end. Every ``--save-every`` steps the progress is written to
``OUT.progress``: an interrupted run, started again with the same command, goes on from there and
gives the model an uninterrupted run gives.

Two training-time defenses (:mod:`regionattack.defenses`) are available: ``--padding reflect``
(or ``replicate``, ``circular``) trains a copy of the model whose padded convolutions no longer pad
with zeros, and ``--augshift WEIGHT`` adds AugShift's penalty (the distance between the pooled
latents of two views shifted by up to ``--augshift-shift`` of the image size) to the loss. Both are
recorded in the checkpoint's metadata (``"padding"``, ``"augshift"``), and
``build_from_checkpoint`` converts the rebuilt model to the saved padding.
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
from torch.utils.data import Dataset

from regionattack.bench.environment import environment
from regionattack.cli import add_option_argument, parse_floats, parse_size
from regionattack.data import DATASETS, check_size_divisible, load_dataset
from regionattack.defenses import PADDING_MODES, AugShift, padding_modes, set_padding
from regionattack.latent import model_logits, predicted_classes
from regionattack.metrics import ConfusionMatrix
from regionattack.models import build_model, save_checkpoint, train_segmenter
from regionattack.normalization import IMAGENET_MEAN, IMAGENET_STD, with_normalization

logger = logging.getLogger("regionattack.train")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``benchmarks/train.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument("--root", required=True, help="dataset folder")
    parser.add_argument("--split", default="train", help="training split (default: train)")
    parser.add_argument("--eval-split", default="val", help="split to report mIoU on ('' for none)")
    parser.add_argument("--model", default="smp:DeepLabV3:resnet18", help="see build_model")
    add_option_argument(parser)
    parser.add_argument("--stride", type=int, default=16, help="the model's output stride")
    parser.add_argument("--size", type=parse_size, default=(176, 240), help="HEIGHTxWIDTH")
    parser.add_argument("--mean", type=parse_floats, default=IMAGENET_MEAN)
    parser.add_argument("--std", type=parse_floats, default=IMAGENET_STD)
    parser.add_argument("--max-images", type=int, default=None, help="use the first N images")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hflip", action="store_true", help="random horizontal flips")
    parser.add_argument(
        "--scale",
        type=parse_floats,
        default=None,
        metavar="LOW,HIGH",
        help="scale jitter: resize each batch by a factor in [LOW, HIGH], crop or pad back",
    )
    parser.add_argument(
        "--save-every",
        type=int,
        default=50,
        metavar="STEPS",
        help="write OUT.progress every STEPS steps; the same command resumes from it "
        "(default: 50; 0: off; off with --augshift)",
    )
    parser.add_argument(
        "--padding",
        choices=PADDING_MODES,
        default="zeros",
        help="padding mode of every padded convolution (default: zeros, as built)",
    )
    parser.add_argument(
        "--augshift",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="weight of the AugShift penalty (default: 0, off)",
    )
    parser.add_argument(
        "--augshift-shift",
        type=float,
        default=0.25,
        metavar="FRACTION",
        help="AugShift's largest shift, a fraction of the image size (default: 0.25)",
    )
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="checkpoint file to write")
    return parser


def evaluate(model: torch.nn.Module, dataset, num_classes: int, device: str) -> float:
    """MIoU of ``model`` on ``dataset`` (batches of 8)."""
    confusion = ConfusionMatrix(num_classes)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    with torch.no_grad():
        for images, labels in loader:
            logits = model_logits(model(images.to(device)), images.shape[-2:])
            confusion.update(predicted_classes(logits).cpu(), labels)
    return confusion.miou()


def prepare(
    args: argparse.Namespace,
) -> tuple[torch.nn.Module, Dataset, tuple[int, int], AugShift | None]:
    """The seeded network (padding converted), the training set, the size and AugShift (or None).

    Raises:
        ValueError: For a size the stride does not divide, or a bad model or defense setting.
        FileNotFoundError: If the dataset is not where ``--root`` says.
    """
    size = check_size_divisible(args.size, args.stride)
    if args.scale is not None and (len(args.scale) != 2 or not 0 < args.scale[0] <= args.scale[1]):
        raise ValueError(f"--scale must be LOW,HIGH with 0 < LOW <= HIGH; got {args.scale}")
    train_set = load_dataset(
        args.dataset, args.root, args.split, size=size, max_images=args.max_images
    )
    torch.manual_seed(args.seed)
    network = build_model(args.model, len(train_set.classes), **dict(args.option))
    if args.padding != "zeros":
        network = set_padding(network, args.padding)
        logger.info("padding: %s", padding_modes(network))
    augshift: AugShift | None = AugShift(args.augshift, args.augshift_shift, seed=args.seed)
    if augshift.weight == 0:
        augshift = None  # off; the settings are still checked
    return network, train_set, size, augshift


def checkpoint_meta(
    args: argparse.Namespace, train_set: Dataset, size: tuple[int, int], augshift, losses, seconds
) -> dict:
    """What the checkpoint records beside the weights: how to rebuild the model, and the training."""
    return {
        "architecture": args.model,
        "options": dict(args.option),
        "dataset": args.dataset,
        "classes": list(train_set.classes),
        "size": list(size),
        "mean": list(args.mean),
        "std": list(args.std),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "hflip": args.hflip,
        "scale": args.scale,
        "padding": args.padding,
        "augshift": None
        if augshift is None
        else {"weight": augshift.weight, "max_shift": augshift.max_shift},
        "seed": args.seed,
        "train_images": len(train_set),
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "train_seconds": seconds,
        "environment": environment(args.device),
    }


def progress_file(args: argparse.Namespace, augshift: AugShift | None) -> str | None:
    """``OUT.progress``, where the training's progress is kept for a resume (None when off)."""
    if args.save_every <= 0:
        return None
    if augshift is not None:
        logger.info("no progress file with --augshift: an interrupted run starts again")
        return None
    return f"{args.out}.progress"


def main(argv: Sequence[str] | None = None) -> int:
    """Train, evaluate, save; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        network, train_set, size, augshift = prepare(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    model = with_normalization(network, args.mean, args.std).to(args.device)
    logger.info("training %s on %d %s images at %s", args.model, len(train_set), args.dataset, size)
    start = time.perf_counter()
    try:
        losses = train_segmenter(
            model,
            train_set,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            hflip=args.hflip,
            seed=args.seed,
            num_workers=args.workers,
            augshift=augshift,
            scale=args.scale,
            progress_file=progress_file(args, augshift),
            save_every=max(args.save_every, 1),
        )
    except ValueError as error:  # e.g. a progress file of another run
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    meta = checkpoint_meta(args, train_set, size, augshift, losses, time.perf_counter() - start)
    if args.eval_split:
        eval_set = load_dataset(args.dataset, args.root, args.eval_split, size=size)
        meta["eval_split"] = args.eval_split
        meta["eval_miou"] = evaluate(model.eval(), eval_set, len(meta["classes"]), args.device)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, model, meta)
    print(json.dumps({k: v for k, v in meta.items() if k != "classes"}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
