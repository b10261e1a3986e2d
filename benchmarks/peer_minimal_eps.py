"""The smallest L-inf radius that breaks each cell: ours beside adv-lib's ALMA prox and PDPGD.

For each cell of a grid over the first ``--images`` images of a CamVid split, this script puts
side by side

* ``RegionAttack``: :func:`~regionattack.vulnerability_map` with ``minimal_eps=True`` (bisection
  to 0.5/255 of the smallest radius at which at least ``--break-fraction`` of the cell's valid
  pixels change; ``--max-outside``, 1 by default, limits the fraction of the others that may
  change there), the median over images per cell, and the fraction of the other pixels that
  RegionAttack at that median radius changes;
* adv-lib's minimal-norm attacks with the cell as their pixel mask, ``alma_prox`` (ALMA prox) and
  ``pdpgd`` (PDPGD, L-inf), asked to change ``--break-fraction`` of the cell's pixels: the L-inf
  norm of the perturbation each finds (``inf`` where it does not succeed), its median over
  images per cell, and the fraction of the *other* pixels it changes, which these attacks do not
  try to keep;
* uniform noise of each peer's radius (per image, seeded): the outside pixels that change by
  chance at that radius.

The changed fractions are against the clean prediction, over pixels whose label is not 255 (the
clean prediction is the peers' label map). adv-lib is an optional peer (``pip install
adv-lib``; see docs/results/maps.md for its install); the script says so when it is missing::

    python -m benchmarks.peer_minimal_eps --checkpoint checkpoints/demo-camvid-s0.pt \\
        --root ../shared/data/camvid --images 8 --grid 3 --steps 300 \\
        --out benchmarks/results/peer_minimal_eps-demo.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import torch
from torch import nn

from benchmarks import camvid_checkpoint
from regionattack.bench import write_record
from regionattack.bench.identity import data_identity
from regionattack.cli import parse_grid, parse_radius
from regionattack.latent import model_logits, predicted_classes
from regionattack.maps import map_cells, vulnerability_map
from regionattack.metrics import IGNORE_INDEX, changed_fractions
from regionattack.models import state_digest

PEERS = ("ALMA prox", "PDPGD")


class _Logits(nn.Module):
    """The model's logits at input size as one tensor (what adv-lib's attacks call)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return model_logits(self.model(images), images.shape[-2:])


def adv_lib_segmentation():
    """adv-lib's segmentation attacks, or ImportError saying how to install adv-lib."""
    try:
        from adv_lib.attacks import segmentation
    except ImportError as error:
        raise ImportError(
            "this script needs adv-lib (a peer, not a dependency of regionattack): "
            "pip install 'setuptools<80' wheel && pip install --no-build-isolation visdom && "
            "pip install adv-lib"
        ) from error
    return segmentation


def peer_attack(name: str, model: nn.Module, images, clean, masks, fraction: float, steps: int):
    """Adversarial images of one adv-lib minimal-norm attack, the cell as its pixel mask."""
    segmentation = adv_lib_segmentation()
    if name == "ALMA prox":
        return segmentation.alma_prox(
            model, images, clean, masks=masks, adv_threshold=fraction, num_steps=steps
        )
    return segmentation.pdpgd(
        model, images, clean, norm=float("inf"), masks=masks, adv_threshold=fraction,
        num_steps=steps,
    )  # fmt: skip


def noise_at(images: torch.Tensor, radii: torch.Tensor, seed: int) -> torch.Tensor:
    """Uniform noise of per-image L-inf radius ``radii`` (0 where not finite), clipped to [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    unit = torch.rand(images.shape, generator=generator) * 2 - 1
    scale = torch.where(torch.isfinite(radii), radii, torch.zeros_like(radii))
    return (images + unit.to(images) * scale.view(-1, 1, 1, 1)).clamp(0, 1)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def table(result: dict) -> str:
    """A Markdown table of the result, one row per cell; radii in 1/255, ``-`` where none."""
    shape = result["settings"]["grid"]
    peers = [name for name in PEERS if name in result["seconds"]]
    header = ["cell", "RegionAttack", "RegionAttack changed outside", *[f"{name}{part}" for name in peers
              for part in ("", " broken", " changed outside", " noise changed outside")]]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    radius_keys = ("RegionAttack", *PEERS)
    for row in result["cells"]:
        cells_text = [
            "-" if row[key] is None else f"{row[key] * (255 if key in radius_keys else 1):.3g}"
            for key in header[1:]
        ]
        lines.append(f"| {divmod(row['cell'], shape[1]) if len(shape) == 2 else row['cell']} | "
                     + " | ".join(cells_text) + " |")  # fmt: skip
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``benchmarks/peer_minimal_eps.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    camvid_checkpoint.add_arguments(parser)
    parser.add_argument("--grid", type=parse_grid, default=3)
    parser.add_argument("--steps", type=int, default=300, help="steps of each adv-lib attack")
    parser.add_argument("--eps-max", type=parse_radius, default=32 / 255)
    parser.add_argument("--break-fraction", type=float, default=0.5)
    parser.add_argument("--max-outside", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    return parser


def our_rows(model: nn.Module, images, labels, cells, args: argparse.Namespace) -> list[dict]:
    """Per cell: RegionAttack's median minimal radius and what it changes outside at that radius."""
    ours = vulnerability_map(
        model, images, grid=args.grid, labels=labels, minimal_eps=True,
        eps_max=args.eps_max, break_fraction=args.break_fraction, max_outside=args.max_outside,
        channels=False, seed=args.seed, batch_size=args.batch_size,
    )  # fmt: skip
    rows = []
    for j, radius in enumerate(ours.minimal_eps.flatten().tolist()):
        row = {"cell": j, "RegionAttack": _finite(radius), "RegionAttack changed outside": None}
        if math.isfinite(radius):  # what RegionAttack at the cell's median radius changes outside
            at_median = vulnerability_map(
                model, images, grid=cells[j : j + 1], labels=labels, eps=radius,
                channels=False, seed=args.seed, batch_size=args.batch_size,
            )  # fmt: skip
            row["RegionAttack changed outside"] = float(at_median.changed_outside[0])
        rows.append(row)
    return rows


def peer_cell(name: str, model: nn.Module, images, clean, valid, cell, args) -> dict:
    """One peer on one cell: median radius, fraction broken, outside changes (its and noise's)."""
    radii, outside, noise_outside, broken = [], [], [], []
    for first in range(0, len(images), args.batch_size):
        batch = slice(first, first + args.batch_size)
        inside = cell.expand_as(clean[batch])
        adv = peer_attack(name, model, images[batch], clean[batch], inside & valid[batch],
                          args.break_fraction, args.steps)  # fmt: skip
        with torch.no_grad():
            predicted = predicted_classes(model(adv))
            changed_in, changed_out = changed_fractions(
                predicted, clean[batch], valid[batch], inside
            )[0]
            success = changed_in >= args.break_fraction
            norm = (adv - images[batch]).flatten(1).abs().amax(dim=1)
            radius = torch.where(success, norm, torch.full_like(norm, math.inf))
            noisy = noise_at(images[batch], radius, args.seed + first)
            noise_out = changed_fractions(
                predicted_classes(model(noisy)), clean[batch], valid[batch], inside
            )[0][1]
        radii += radius.tolist()
        broken += success.tolist()
        outside += changed_out[success].tolist()
        noise_outside += noise_out[success].tolist()
    return {
        name: _finite(statistics.median(radii)),
        f"{name} broken": sum(broken) / len(broken),
        f"{name} changed outside": statistics.fmean(outside) if outside else None,
        f"{name} noise changed outside": statistics.fmean(noise_outside) if noise_outside else None,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        adv_lib_segmentation()
    except ImportError as error:
        print(f"peer_minimal_eps: {error}", file=sys.stderr)
        return 2
    loaded = camvid_checkpoint.load(args)
    pairs = [loaded.dataset[i] for i in range(loaded.count)]
    images = torch.stack([image for image, _ in pairs])
    labels = torch.stack([label for _, label in pairs])
    valid = labels != IGNORE_INDEX
    logits_model = _Logits(loaded.model).eval()
    with torch.no_grad():
        clean = predicted_classes(logits_model(images))
    cells, shape = map_cells(args.grid, loaded.size)

    start = time.perf_counter()
    rows = our_rows(loaded.model, images, labels, cells, args)
    seconds = {"RegionAttack": time.perf_counter() - start}
    result = {
        "settings": {**vars(args), "grid": list(shape), "eps_max": args.eps_max},
        "model_state": state_digest(loaded.model),
        "data": data_identity(loaded.dataset, loaded.count),
        "seconds": seconds,
        "cells": rows,
    }
    write_record(args.out, result)  # kept after each attack: a stopped run keeps them
    for name in PEERS:
        start = time.perf_counter()
        for j, cell in enumerate(cells):
            rows[j].update(peer_cell(name, logits_model, images, clean, valid, cell, args))
            print(f"{name}: cell {j} done", file=sys.stderr)
        seconds[name] = time.perf_counter() - start
        write_record(args.out, result)
    print(table(result))
    print(f"radii in 1/255; seconds: {seconds}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
