"""The bench's attacks: built by name, run over this process's images, summed and summarised."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from regionattack._checks import IGNORE_INDEX
from regionattack._state import seeded_rng
from regionattack.attacks.base import attack_with_clean
from regionattack.attacks.registry import attack_class, build_attack
from regionattack.bench.setting import Setting, sum_confusions
from regionattack.latent import predict
from regionattack.metrics import MaskedConfusions, changed_pixels, region_specificity
from regionattack.ranking import ChannelRanking


@dataclass
class AttackOutcome:
    """Sums over an attack's images, reduced over processes."""

    clean: MaskedConfusions
    attacked: MaskedConfusions
    changed: torch.Tensor  # (2,) changed pixels inside / outside the region
    counted: torch.Tensor  # (2,) valid pixels inside / outside
    linf: float
    l2_sum: float
    images: int
    seconds: float
    examples: tuple[torch.Tensor, ...] | None  # images, labels, clean and attacked predictions
    budget: torch.Tensor | None = None  # (2,) images that kept an outside budget / had one


def run_attack(
    setting: Setting,
    attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    region: torch.Tensor,
    *,
    description: str,
    max_images: int | None = None,
    keep_examples: int = 4,
    seed: int = 0,
) -> AttackOutcome:
    """Attack this shard's images; sums of the metrics over all processes.

    ``region`` is the (H, W) mask the attack targets (measured as ``"region"``). The clean
    predictions are handed to the attack (``clean=``) when it takes them, so it does not compute
    them again. Each batch's attack runs with torch's global generator seeded with ``seed`` (and
    restored afterwards), so attacks that draw from it (torchattacks') repeat across runs.
    """
    masks = {"region": region}
    clean_counts = MaskedConfusions(setting.num_classes, masks)
    attacked_counts = MaskedConfusions(setting.num_classes, masks)
    changed = torch.zeros(2, dtype=torch.long)
    counted = torch.zeros(2, dtype=torch.long)
    linf, l2_sum, seen, seconds = 0.0, 0.0, 0, 0.0
    examples = None
    inside = region.to(setting.workers.device)
    budget = torch.zeros(2, dtype=torch.long)
    for images, labels in setting.iterate(description, max_images):
        clean = predict(setting.model, images)
        with seeded_rng(seed, images.device):
            start = time.perf_counter()
            adversarial = attack_with_clean(attack, images, labels, clean)
            seconds += time.perf_counter() - start
        met = getattr(attack, "budget_met", None)  # an attack with max_outside
        if met is not None:
            budget += torch.tensor([int(met.sum()), met.numel()])
        preds = predict(setting.model, adversarial)
        clean_counts.update(clean, labels)
        attacked_counts.update(preds, labels)
        batch_changed, batch_counted = changed_pixels(
            preds, clean, labels != IGNORE_INDEX, inside.expand_as(labels)
        )
        changed += batch_changed.sum(0).cpu()
        counted += batch_counted.sum(0).cpu()
        delta = (adversarial - images).flatten(1)
        linf = max(linf, float(delta.abs().max()))
        l2_sum += float(delta.norm(dim=1).sum())
        if examples is None and keep_examples:
            keep = slice(0, keep_examples)
            examples = tuple(t[keep].cpu() for t in (images, labels, clean, preds))
        seen += images.shape[0]
    workers = setting.workers
    sum_confusions([clean_counts, attacked_counts], workers)
    totals = workers.sum(torch.tensor([l2_sum, float(seen), seconds], dtype=torch.float64))
    return AttackOutcome(
        clean=clean_counts,
        attacked=attacked_counts,
        changed=workers.sum(changed),
        counted=workers.sum(counted),
        linf=workers.max(linf),
        l2_sum=float(totals[0]),
        images=int(totals[1]),
        seconds=float(totals[2]),
        examples=examples,
        budget=workers.sum(budget) if getattr(attack, "max_outside", None) is not None else None,
    )


def suite_attack(
    name: str,
    model: nn.Module,
    eps: float,
    region: torch.Tensor | None,
    *,
    steps: int,
    seed: int,
    ranking: ChannelRanking | None = None,
    options: dict | None = None,
) -> nn.Module:
    """A registered attack at radius ``eps`` against ``region``, as the bench and harness run it.

    :func:`~regionattack.attacks.build_attack` with, for an attack that takes a ranking of its
    region's channels (its ``ranking_argument``), ``ranking``; ``options`` go to the constructor.

    Raises:
        ValueError: For an unknown attack or option, or a missing ranking.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> attack = suite_attack("CosPGD[apgd]", TinySegmenter(), 8 / 255, None, steps=2, seed=0)
        >>> type(attack).__name__, attack.optimizer
        ('CosPGD', 'apgd')
    """
    options = dict(options or {})
    takes = attack_class(name).ranking_argument
    if takes is not None:
        if ranking is None:
            raise ValueError(f"{name} needs the ranking of the region's channels")
        options[takes] = ranking
    return build_attack(name, model, eps=eps, steps=steps, region=region, seed=seed, **options)


def summarize_attack(outcome: AttackOutcome) -> dict[str, float]:
    """The measured numbers of an attack: mIoU inside/outside ``"region"``, drops, specificity.

    A side without valid pixels (the outside of a whole-image attack) has NaN for its mIoU and
    its changed fraction alike, not a changed fraction of 0 that reads as a measurement.
    """
    clean_r = outcome.clean.region("region")
    attacked_r = outcome.attacked.region("region")
    changed = [
        float(changed) / float(counted) if counted else float("nan")
        for changed, counted in zip(outcome.changed.tolist(), outcome.counted.tolist(), strict=True)
    ]
    return {
        "images": outcome.images,
        "miou": attacked_r.all,
        "miou_inside": attacked_r.inside,
        "miou_outside": attacked_r.outside,
        "clean_miou": clean_r.all,
        "clean_miou_inside": clean_r.inside,
        "clean_miou_outside": clean_r.outside,
        "drop_inside": clean_r.inside - attacked_r.inside,
        "drop_outside": clean_r.outside - attacked_r.outside,
        "specificity": region_specificity(clean_r, attacked_r),
        "changed_inside": changed[0],
        "changed_outside": changed[1],
        "linf": outcome.linf,
        "l2": outcome.l2_sum / max(outcome.images, 1),
        "seconds_per_image": outcome.seconds / max(outcome.images, 1),
        # the fraction of images that kept the attack's outside budget (None: no budget)
        "budget_met": None
        if outcome.budget is None
        else float(outcome.budget[0]) / max(int(outcome.budget[1]), 1),
    }
