"""How RegionAttack's pixel weights and random start change its drop inside and outside the region.

Runs RegionAttack's "segmentation" objective with and without ``done_weight`` / ``flipped_weight``
and the random start, and the region-masked CosPGD for reference, on the first images of a CamVid
split, and writes ``benchmarks/results/region_attack_weights.json``::

    python -m benchmarks.region_attack_weights --checkpoint checkpoints/camvid-deeplabv3-r18.pt \\
        --root ../shared/data/camvid --images 32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from regionattack import regions
from regionattack.attacks import CosPGD, RegionAttack
from regionattack.data import load_dataset
from regionattack.metrics import RegionConfusion, region_specificity
from regionattack.models import build_from_checkpoint

VARIANTS = {
    "plain CE, random start (before)": {
        "done_weight": 1.0,
        "flipped_weight": 0.0,
        "random_start": True,
    },
    "done_weight only": {"flipped_weight": 0.0},
    "flipped_weight only": {"done_weight": 1.0},
    "both, no random start": {"random_start": False},
    "both (default)": {},
    "both, outside_weight 2": {"outside_weight": 2.0},
}


def main() -> None:
    """Run every variant; print a table; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--eps", type=int, default=8, help="radius in 1/255")
    parser.add_argument("--out", default="benchmarks/results/region_attack_weights.json")
    args = parser.parse_args()
    model, meta = build_from_checkpoint(args.checkpoint)
    dataset = load_dataset("camvid", args.root, args.split, size=tuple(meta["size"]))
    items = [dataset[i] for i in range(min(args.images, len(dataset)))]
    images = torch.stack([image for image, _ in items])
    labels = torch.stack([label for _, label in items])
    left = regions.named("left", tuple(images.shape[-2:]))[None]

    def measure(predictions: torch.Tensor):
        confusion = RegionConfusion(len(dataset.classes))
        confusion.update(predictions, labels, left)
        return confusion.result()

    with torch.no_grad():
        clean = measure(model(images).argmax(1))
    eps = args.eps / 255
    common = {"eps": eps, "alpha": eps / 4, "steps": 10, "seed": 0}
    attacks = {name: RegionAttack(model, "left", **common, **kw) for name, kw in VARIANTS.items()}
    attacks["CosPGD (region-masked)"] = CosPGD(model, "left", **common)
    rows = []
    for name, attack in attacks.items():
        start = time.perf_counter()
        adversarial = attack(images, labels)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            result = measure(model(adversarial).argmax(1))
        rows.append(
            {
                "attack": name,
                "drop_inside": clean.inside - result.inside,
                "drop_outside": clean.outside - result.outside,
                "specificity": region_specificity(clean, result),
                "seconds_per_image": seconds / len(items),
            }
        )
        print(
            f"{name:34s} drop inside {rows[-1]['drop_inside']:.3f}  outside "
            f"{rows[-1]['drop_outside']:.4f}  specificity {rows[-1]['specificity']:.1f}",
            flush=True,
        )
    record = {"args": vars(args), "clean": vars(clean), "rows": rows, "date": time.strftime("%F")}
    Path(args.out).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
