"""PGD on the whole image: the reference attack users would reach for first."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from regionattack._checks import IGNORE_INDEX
from regionattack._state import seeded_rng
from regionattack.attacks.base import Problem, SegmentationAttack
from regionattack.attacks.registry import register
from regionattack.regions import RegionLike


@register("PGD")
class PGD(SegmentationAttack):
    """L-inf PGD (Madry et al., ICLR 2018) on the mean cross-entropy of every pixel.

    The step is that of ``torchattacks.PGD``: a uniform random start in the ``eps`` ball drawn
    from torch's global generator (seeded and restored when ``seed`` is given), ``steps`` signed
    gradient steps of size ``alpha``, clipping to the ball and to [0, 1]. Pixels labelled 255 are
    attacked towards moving away from the clean prediction (cross-entropy has no ignored label
    here, as in torchattacks); without labels the clean prediction is attacked. The attack
    perturbs for the whole image whatever ``region`` it is given (``whole_image``): the region is
    kept only as the one its results are measured against.

    Args:
        model: Segmentation model.
        region: The region its results are measured against (not used by the attack).
        eps: L-inf radius in image units [0, 1]. alpha: Step size (default ``eps / 4``).
        steps: Number of steps.
        random_start: Start from a uniform random point.
        seed: Seed of the random start (an int; None draws from torch's generator unseeded).

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> images = torch.rand(2, 3, 16, 16)
        >>> adv = PGD(TinySegmenter(), eps=8 / 255, steps=2, seed=0)(images)
        >>> bool((adv - images).abs().max() <= 8 / 255 + 1e-6)
        True
    """

    whole_image = True

    def __init__(
        self,
        model: nn.Module,
        region: RegionLike | None = None,
        *,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        random_start: bool = True,
        seed: int | None = None,
    ):
        super().__init__(
            "PGD",
            model,
            eps=eps,
            alpha=alpha,
            steps=steps,
            random_start=random_start,
            seed=seed,
        )
        self.check_region_names(region)
        self.region = region

    def perturb(self, problem: Problem) -> torch.Tensor:
        """Signed-gradient steps on the mean cross-entropy of every pixel (see the class)."""
        images, clean = problem.images, problem.clean
        labels = problem.labels
        labels = clean if labels is None else torch.where(labels == IGNORE_INDEX, clean, labels)
        targets = self.attack_targets(images, labels, clean)
        sign = -1.0 if self.targeted else 1.0
        seeded = (
            contextlib.nullcontext() if self.seed is None else seeded_rng(self.seed, images.device)
        )
        with seeded, torch.enable_grad():
            adv = images.clone()
            if self.random_start:
                adv = (adv + torch.empty_like(adv).uniform_(-self.eps, self.eps)).clamp(0, 1)
            for _ in range(self.steps):
                adv.requires_grad_(True)
                loss = sign * F.cross_entropy(self.logits(adv), targets)
                (grad,) = torch.autograd.grad(loss, adv)
                delta = (adv.detach() + self.alpha * grad.sign() - images).clamp(
                    -self.eps, self.eps
                )
                adv = (images + delta).clamp(0, 1).detach()
        return adv
