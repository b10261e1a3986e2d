"""How much of RegionAttack's effect outside the region travels through ASPP's image pooling.

DeepLabV3's ASPP adds a branch that global-average-pools the encoder's features and broadcasts
the result to every pixel, so a perturbation of the left half could move the right half's
prediction through that one vector. This script measures it: for each attack seed, RegionAttack
(defaults, left half, labels as targets) is run on the first ``--images`` images of a CamVid
split, and the fraction of valid pixels whose predicted class changed, inside and outside the
region, is kept for

* ``full``: the attack on the model, evaluated on the model;
* ``pooling frozen at evaluation``: the same adversarial images, evaluated with the pooling
  branch's output held at its value on the clean images;
* ``pooling frozen``: the attack run on, and evaluated on, the model whose pooling branch is
  held at its clean value (a DeepLabV3 without that path from the left half to the right);

next to uniform noise of the same radius. Results go to ``--out``::

    python -m benchmarks.pooling_path --checkpoint checkpoints/demo-camvid-s0.pt \\
        --root ../shared/data/camvid --images 32 --seeds 0,1,2 \\
        --out benchmarks/results/pooling_path-demo.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks import camvid_checkpoint
from regionattack import RegionAttack, UniformNoise
from regionattack.bench import write_record
from regionattack.bench.identity import data_identity
from regionattack.bench.region_names import region_mask
from regionattack.cli import parse_radii
from regionattack.latent import model_logits
from regionattack.metrics import IGNORE_INDEX
from regionattack.models import state_digest

CASES = ("noise", "full", "pooling frozen at evaluation", "pooling frozen")


def pooling_branch(model: nn.Module) -> nn.Module:
    """The model's ASPP image-pooling branch (smp's or torchvision's ``ASPPPooling``).

    Raises:
        ValueError: If the model has none, or more than one.
    """
    found = [m for m in model.modules() if type(m).__name__ == "ASPPPooling"]
    if len(found) != 1:
        raise ValueError(f"expected one ASPPPooling module (a DeepLabV3); found {len(found)}")
    return found[0]


class FrozenPooling(nn.Module):
    """``model`` with its ASPP pooling branch's output replaced by ``clean``, set per batch."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.branch = pooling_branch(model)
        self.clean: torch.Tensor | None = None

    def capture(self, images: torch.Tensor) -> torch.Tensor:
        """Keep the branch's output on ``images`` (the clean batch); return the clean logits."""
        captured: dict[str, torch.Tensor] = {}
        hook = self.branch.register_forward_hook(lambda _m, _i, out: captured.update(out=out))
        try:
            with torch.no_grad():
                logits = model_logits(self.model(images))
        finally:
            hook.remove()
        self.clean = captured["out"]
        return logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hook = self.branch.register_forward_hook(lambda _m, _i, _out: self.clean)
        try:
            return model_logits(self.model(images))
        finally:
            hook.remove()


def changed(
    predicted: torch.Tensor, clean: torch.Tensor, inside: torch.Tensor, valid: torch.Tensor
) -> tuple[int, int, int, int]:
    """Changed and valid pixel counts inside and outside the region.

    Example:
        >>> changed(torch.tensor([[[1, 0]]]), torch.tensor([[[0, 0]]]),
        ...         torch.tensor([[[True, False]]]), torch.tensor([[[True, True]]]))
        (1, 1, 0, 1)
    """
    differs = predicted != clean
    return (
        int((differs & inside & valid).sum()),
        int((inside & valid).sum()),
        int((differs & ~inside & valid).sum()),
        int((~inside & valid).sum()),
    )


def measure(model: nn.Module, loader: DataLoader, left: torch.Tensor, eps: float, steps: int,
            seed: int) -> dict[str, dict[str, float]]:  # fmt: skip
    """Changed fractions inside and outside for each case of :data:`CASES` over the loader."""
    frozen = FrozenPooling(model)
    counts = {case: [0, 0, 0, 0] for case in CASES}
    for images, labels in loader:
        inside = left.expand(images.shape[0], -1, -1)  # left: (H, W)
        valid = labels != IGNORE_INDEX
        clean_logits = frozen.capture(images)
        clean = clean_logits.argmax(dim=1)
        with torch.no_grad():  # holding the branch at its clean value changes nothing clean
            assert torch.equal(frozen(images).argmax(dim=1), clean)
        adversarial = {
            "noise": UniformNoise(model, eps=eps, seed=seed)(images),
            "full": RegionAttack(model, left, eps=eps, steps=steps, seed=seed)(images, labels),
            "pooling frozen": RegionAttack(frozen, left, eps=eps, steps=steps, seed=seed)(
                images, labels
            ),
        }
        adversarial["pooling frozen at evaluation"] = adversarial["full"]
        for case in CASES:
            evaluated = model if case in ("noise", "full") else frozen
            with torch.no_grad():
                predicted = model_logits(evaluated(adversarial[case])).argmax(dim=1)
            for i, count in enumerate(changed(predicted, clean, inside, valid)):
                counts[case][i] += count
    return {
        case: {"changed_inside": c[0] / max(c[1], 1), "changed_outside": c[2] / max(c[3], 1)}
        for case, c in counts.items()
    }


def table(record: dict) -> str:
    """A Markdown table: per case, the changed fractions inside and outside (mean ± std over seeds)."""
    seeds = record["settings"]["seeds"]
    lines = ["| case | changed inside | changed outside |", "|---|---|---|"]
    for case in CASES:
        cells = []
        for name in ("changed_inside", "changed_outside"):
            values = [record["rows"][str(seed)][case][name] for seed in seeds]
            cells.append(f"{statistics.fmean(values):.4f} ± {statistics.pstdev(values):.4f}")
        lines.append(f"| {case} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    """Measure every seed; write ``--out``; print mean ± std over seeds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    camvid_checkpoint.add_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eps", type=lambda t: parse_radii(t)[0], default=8 / 255)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seeds", type=lambda t: [int(s) for s in t.split(",")], default=[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    model, size, dataset, count, images = camvid_checkpoint.load(args)
    loader = DataLoader(images, batch_size=args.batch_size)
    left = region_mask("left", size)
    rows = {}
    for seed in args.seeds:
        rows[str(seed)] = measure(model, loader, left, args.eps, args.steps, seed)
    record = {
        "identity": {"model_state": state_digest(model), "data": data_identity(dataset, count)},
        "settings": {"eps": args.eps, "steps": args.steps, "seeds": args.seeds, "region": "left"},
        "date": time.strftime("%F"),
        "rows": rows,
    }
    write_record(args.out, record)
    print(table(record))


if __name__ == "__main__":
    main()
