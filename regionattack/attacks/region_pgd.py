"""RegionPGD: the plain baseline, cross-entropy on the region's pixels only."""

from __future__ import annotations

from torch import nn

from regionattack.attacks.region_attack import RegionAttack
from regionattack.attacks.registry import register
from regionattack.regions import RegionLike


@register("RegionPGD")
class RegionPGD(RegionAttack):
    """L-inf PGD that ascends the mean cross-entropy over the region's pixels and nothing else.

    The baseline for every comparison: a :class:`RegionAttack` with ``objective="segmentation"``,
    plain cross-entropy (every pixel weighs the same) and no term that preserves the outside. Untargeted by default; targeted with
    ``set_mode_targeted_by_label``.

    Example:
        >>> import torch
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> RegionPGD(net, "top", steps=1)(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(
        self,
        model: nn.Module,
        region: RegionLike | None,
        *,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        random_start: bool = True,
        perturb_region: RegionLike | None = None,
        seed: int | None = None,
        optimizer: str = "pgd",
    ):
        super().__init__(
            model,
            region,
            eps=eps,
            alpha=alpha,
            steps=steps,
            random_start=random_start,
            objective="segmentation",
            perturb_region=perturb_region,
            outside_weight=0.0,
            done_weight=1.0,
            flipped_weight=0.0,
            seed=seed,
            optimizer=optimizer,
        )
        self.attack = "RegionPGD"
