"""How RegionAttack's pixel weights and random start change its drop inside and outside the region.

Runs RegionAttack's "segmentation" objective with and without ``done_weight`` / ``flipped_weight``
and the random start, and the region-masked CosPGD for reference, on the first images of a CamVid
split, and writes ``benchmarks/results/region_attack_weights.json``::

    python -m benchmarks.region_attack_weights --checkpoint checkpoints/camvid-deeplabv3-r18.pt \\
        --root ../shared/data/camvid --images 32
"""

from __future__ import annotations

import argparse
import time

from benchmarks import camvid_checkpoint
from regionattack.attacks import build_attack
from regionattack.bench import write_record
from regionattack.bench.attacking import run_attack, summarize_attack
from regionattack.bench.region_names import region_mask
from regionattack.bench.setting import Setting
from regionattack.cli import parse_radius

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


def table(record: dict) -> str:
    """A Markdown table: drop inside and outside the left half and specificity, per variant."""
    lines = ["| variant | drop inside | drop outside | specificity |", "|---|---|---|---|"]
    for row in record["rows"]:
        lines.append(
            f"| {row['attack']} | {row['drop_inside']:.3f} | {row['drop_outside']:.3f} | "
            f"{row['specificity']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run every variant; print a table; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    camvid_checkpoint.add_arguments(parser)
    parser.add_argument("--eps", type=parse_radius, default=8 / 255, help="8/255 or 0.0314")
    parser.add_argument("--out", default="benchmarks/results/region_attack_weights.json")
    args = parser.parse_args()
    model, size, dataset, _, images = camvid_checkpoint.load(args)
    left = region_mask("left", size)
    # One batch, as before: the random start of a seeded attack depends on the batch.
    setting = Setting(model.eval(), images, len(images), len(dataset.classes), {"region": left})
    variants = {name: ("RegionAttack", options) for name, options in VARIANTS.items()}
    variants["CosPGD (region-masked)"] = ("CosPGD", {})
    rows = []
    for name, (attack, options) in variants.items():
        built = build_attack(attack, model, eps=args.eps, steps=10, region=left, seed=0, **options)
        row = {
            "attack": name,
            **summarize_attack(run_attack(setting, built, left, description=name)),
        }
        rows.append(row)
        print(
            f"{name:34s} drop inside {row['drop_inside']:.3f}  outside "
            f"{row['drop_outside']:.4f}  specificity {row['specificity']:.1f}",
            flush=True,
        )
    record = {"args": vars(args), "rows": rows, "date": time.strftime("%F")}
    write_record(args.out, record)


if __name__ == "__main__":
    main()
