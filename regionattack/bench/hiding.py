"""How well an attack hides classes over a dataset: hidden fraction, target match, outside changes.

Any registered attack can be measured: a class-hiding attack (one with a ``classes_argument``,
such as :class:`~regionattack.HideClasses` or :class:`~regionattack.Metzen`) hides the classes
itself; a region attack (masked CosPGD, RegionAttack, ...) is run targeted, with the dynamic
target of :func:`~regionattack.hide_target` as its target map and the classes' pixels as its
per-image region; an attack that reads no prediction (uniform noise) is simply applied. Only the
images whose clean prediction has one of the classes are attacked and counted.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from regionattack.attacks.base import SegmentationAttack
from regionattack.attacks.hiding import Hiding, hiding
from regionattack.latent import predict
from regionattack.metrics import hiding_measures


def hide_with(
    attack: SegmentationAttack, images: torch.Tensor, clean: torch.Tensor, hidden: Hiding
) -> torch.Tensor:
    """``attack`` applied to hide ``hidden``'s pixels of ``images`` (see the module).

    Every image must have pixels to hide (``hidden.present`` all True: see
    :func:`measure_hiding`, which keeps only those).

    Example:
        >>> import regionattack as ra
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> x = torch.rand(2, 3, 32, 32)
        >>> clean = ra.latent.predict(net, x)
        >>> clean[:, :4] = 1  # a band of class 1 in every image
        >>> hidden = hiding(clean, 1, torch.ones(1, 32, 32, dtype=torch.bool))
        >>> hide_with(ra.CosPGD(net, None, steps=1), x, clean, hidden).shape
        torch.Size([2, 3, 32, 32])
    """
    kind = type(attack)
    if kind.classes_argument is not None:
        return attack(images, clean=clean)
    if not kind.needs_clean:
        return attack(images)
    if attack.targeted:
        raise ValueError(
            f"{kind.__name__} is in a targeted mode; hide_with sets the dynamic target itself"
        )
    attack.set_mode_targeted_by_label(quiet=True)
    try:
        return attack(images, hidden.target, region=hidden.inside, clean=clean)
    finally:  # the caller's attack is left as it came (torchattacks prints the switch)
        with contextlib.redirect_stdout(io.StringIO()):
            attack.set_mode_default()


@dataclass
class HidingTotals:
    """Pixel counts summed over the attacked images (the fractions are ratios of the sums)."""

    images: int = 0
    pixels: int = 0
    hidden: int = 0
    matched: int = 0
    outside_pixels: int = 0
    changed_outside: int = 0
    budget_images: int = 0
    budget_met: int = 0
    linf: float = 0.0
    seconds: float = 0.0

    def summary(self) -> dict[str, float]:
        """Fractions and means (NaN where nothing was counted), with the totals."""
        nan = float("nan")
        return {
            **asdict(self),
            "hidden_fraction": self.hidden / self.pixels if self.pixels else nan,
            "target_match": self.matched / self.pixels if self.pixels else nan,
            "changed_outside_fraction": (
                self.changed_outside / self.outside_pixels if self.outside_pixels else nan
            ),
            "budget_met_fraction": (
                self.budget_met / self.budget_images if self.budget_images else nan
            ),
            "seconds_per_image": self.seconds / self.images if self.images else nan,
        }


def measure_hiding(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    classes: object,
    attack: SegmentationAttack,
) -> HidingTotals:
    """Attack every image of ``batches`` whose clean prediction has ``classes``; sum the measures.

    ``batches`` yields (N, 3, H, W) images (or ``(images, labels)`` pairs, whose labels are not
    used: hiding is measured against the clean prediction).

    Example:
        >>> import regionattack as ra
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> attack = ra.HideClasses(net, classes=[0, 1, 2], steps=2, seed=0)
        >>> totals = measure_hiding(net, [torch.rand(2, 3, 32, 32)], [0, 1, 2], attack)
        >>> totals.images, totals.pixels, totals.hidden  # every pixel is of a hidden class
        (2, 2048, 0)
    """
    totals = HidingTotals()
    for batch in batches:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        clean = predict(model, images)
        whole = torch.ones(1, *clean.shape[-2:], dtype=torch.bool, device=clean.device)
        hidden = hiding(clean, classes, whole)
        keep = hidden.present
        if not bool(keep.any()):
            continue
        images, clean = images[keep], clean[keep]
        hidden = Hiding(hidden.inside[keep], hidden.target[keep], keep[keep])
        start = time.perf_counter()
        adv = hide_with(attack, images, clean, hidden)
        totals.seconds += time.perf_counter() - start
        measures = hiding_measures(clean, predict(model, adv), classes, target=hidden.target)
        totals.images += int(keep.sum())
        totals.pixels += int(measures["pixels"].sum())
        totals.outside_pixels += int(measures["outside_pixels"].sum())
        totals.hidden += int(measures["hidden_pixels"].sum())
        totals.matched += int(measures["matched_pixels"].sum())
        totals.changed_outside += int(measures["changed_pixels"].sum())
        met = getattr(attack, "budget_met", None)
        if met is not None:
            totals.budget_images += int(met.numel())
            totals.budget_met += int(met.sum())
        totals.linf = max(totals.linf, float((adv - images).abs().max()))
    return totals
