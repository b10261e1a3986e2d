"""Do region rankings transfer from the images they were computed on to other images?

Trains (or loads from the demo cache) the demo's CamVid model, ranks channels for "left" and
"right" on (a) the first 128 training images with their labels, (b) the same images with the
model's clean predictions as targets, (c) the validation images themselves (clean predictions),
zeroes the top-k of each ranking and reports the mean cross-entropy and pixel accuracy of the
validation set in each half.

    python -m benchmarks.ranking_transfer --root ../shared/data/camvid --json benchmarks/results/ranking_transfer.json
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from regionattack import ablate_channels, rank_channels, regions
from regionattack.bench import write_record
from regionattack.demo import DemoConfig, load_data, trained_model


def half_metrics(model, images, labels, channels=None):
    """Mean cross-entropy and pixel accuracy in the left and right halves."""
    left = regions.named("left", tuple(images.shape[-2:]))
    with torch.no_grad():
        if channels is None:
            logits = model(images)
        else:
            with ablate_channels(model, channels):
                logits = model(images)
    loss = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
    correct = logits.argmax(1) == labels
    valid = labels != 255
    out = {}
    for name, mask in (("left", left), ("right", ~left)):
        keep = valid & mask
        out[f"ce_{name}"] = float(loss[keep].mean())
        out[f"accuracy_{name}"] = float(correct[keep].float().mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="CamVid folder (SegNet layout)")
    parser.add_argument("--json", default="benchmarks/results/ranking_transfer.json")
    parser.add_argument("--rank-images", type=int, default=128)
    args = parser.parse_args()
    start = time.perf_counter()
    config = DemoConfig(data="camvid", root=args.root, train_images=367, eval_images=101)
    data = load_data(config)
    model, info = trained_model(config, data)
    train_x = data["train_images"][: args.rank_images]
    train_y = data["train_labels"][: args.rank_images]
    val_x, val_y = data["eval_images"], data["eval_labels"]
    rows = [{"protocol": "clean", "region": None, "k": 0, **half_metrics(model, val_x, val_y)}]
    protocols = {
        "train images, labels": lambda region: rank_channels(
            model, train_x, labels=train_y, region=region
        ),
        "train images, clean predictions": lambda region: rank_channels(
            model, train_x, region=region
        ),
        "val images, clean predictions": lambda region: rank_channels(model, val_x, region=region),
    }
    for protocol, rank in protocols.items():
        for region in ("left", "right"):
            ranking = rank(region)
            for k in (26, 103):
                rows.append(
                    {
                        "protocol": protocol,
                        "region": region,
                        "k": k,
                        **half_metrics(model, val_x, val_y, ranking.top(k)),
                    }
                )
                print(rows[-1], flush=True)
    result = {"rows": rows, "meta": {"model": info, "seconds": time.perf_counter() - start}}
    write_record(args.json, result)


if __name__ == "__main__":
    main()
