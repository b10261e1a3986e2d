"""The shared loop of SegPGD and CosPGD: PGD on a re-weighted, region-restricted cross-entropy."""

from __future__ import annotations

import torch
from torch import nn

from regionattack._checks import IGNORE_INDEX
from regionattack.attacks.base import Problem, SegmentationAttack
from regionattack.attacks.objectives import (
    region_mean_weights,
    success_score,
    weighted_cross_entropy,
)
from regionattack.attacks.optimizers import OPTIMIZERS
from regionattack.latent import model_logits, predicted_classes
from regionattack.regions import RegionLike


class PixelWeightedPGD(SegmentationAttack):
    """L-inf PGD ascending ``sum_p region_weight_p * pixel_scale_p * CE_p`` (descending if targeted).

    Subclasses define :meth:`pixel_scale`. ``region_weight`` averages over the valid pixels of the
    region (the whole image when ``region`` is None); pixels labelled 255 weigh 0.

    Args:
        model: Segmentation model (logits as a tensor, dict ``"out"`` or tuple with masks first).
        region: Region to attack: a name (``"left"``, ...) or a mask, see
            :mod:`regionattack.regions`; None (default) is the whole image.
        eps: L-inf radius. alpha: Step size (default ``eps / 4``). steps: Number of steps.
        random_start: Start from a uniform random point.
        perturb_region: Where the perturbation may be non-zero (default: everywhere).
        seed: Seed for the random start.
        optimizer: ``"pgd"``, ``"pgd-decay"`` or ``"apgd"`` (see
            :class:`~regionattack.SegmentationAttack`).

    Raises:
        ValueError: If ``region`` or ``perturb_region`` is an unknown name, or a setting is out of
            range.
    """

    name_options = {"optimizer": OPTIMIZERS}

    def __init__(
        self,
        model: nn.Module,
        region: RegionLike | None = None,
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
            type(self).__name__,
            model,
            eps=eps,
            alpha=alpha,
            steps=steps,
            random_start=random_start,
            seed=seed,
            optimizer=optimizer,
        )
        self.check_region_names(region, perturb_region)
        self.region = region
        self.perturb_region = perturb_region

    def perturb(self, problem: Problem) -> torch.Tensor:
        """Ascend the pixel-weighted cross-entropy over the region (descend it when targeted)."""
        images, clean, inside = problem.images, problem.clean, problem.inside
        targets = self.attack_targets(images, problem.labels, clean)
        weights = region_mean_weights(inside, targets)
        network = self.network()
        sign = -1.0 if self.targeted else 1.0
        valid = targets != IGNORE_INDEX
        scores: dict[str, torch.Tensor] = {}

        def objective(adv: torch.Tensor, step: int) -> torch.Tensor:
            logits = model_logits(network(adv), adv.shape[-2:])
            if self.optimizer == "apgd":  # the best iterate is chosen by success
                scores["last"] = success_score(
                    predicted_classes(logits.detach()),
                    targets,
                    clean,
                    inside,
                    valid,
                    targeted=self.targeted,
                )
            scale = self.pixel_scale(logits, targets, step)
            return sign * weighted_cross_entropy(logits, targets, weights * scale)

        return self.pgd(images, objective, problem.allowed, scores)

    def pixel_scale(self, logits: torch.Tensor, targets: torch.Tensor, step: int) -> torch.Tensor:
        """(N, H, W) detached weights of each pixel's cross-entropy at ``step``."""
        raise NotImplementedError
