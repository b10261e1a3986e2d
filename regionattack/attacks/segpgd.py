"""SegPGD (Gu et al., ECCV 2022), on the whole image or restricted to a region."""

from __future__ import annotations

import torch
from torch import nn

from regionattack.attacks.base import SegmentationAttack
from regionattack.attacks.objectives import (
    region_mean_weights,
    segpgd_weights,
    weighted_cross_entropy,
)
from regionattack.latent import model_logits
from regionattack.regions import RegionLike, as_mask


class SegPGD(SegmentationAttack):
    r"""L-inf PGD on the SegPGD loss: cross-entropy re-weighted between right and wrong pixels.

    Gu et al., "SegPGD: An Effective and Efficient Adversarial Attack for Evaluating and Boosting
    Segmentation Robustness" (ECCV 2022). At step ``t`` of ``T`` (0-based) each pixel's
    cross-entropy is weighted :math:`1 - \lambda_t` if the current prediction equals the target
    and :math:`\lambda_t` otherwise, :math:`\lambda_t = t / (2T)`: early steps push the pixels
    still classified correctly, later ones all pixels more evenly (see
    :func:`~regionattack.attacks.objectives.segpgd_weights`).

    With ``region=None`` this is the whole-image attack of the paper (the loss is cospgd's
    ``segpgd_scale``). With a region it is the *region-masked* variant used as a peer in the
    benchmarks: pixels outside the region get weight 0 and the loss is averaged over the valid
    pixels of the region. Pixels labelled 255 are never attacked or counted.

    Untargeted by default (moving away from the labels, or from the clean predictions when no
    labels are given). Targeted with ``set_mode_targeted_by_label`` (labels are the (N, H, W) target
    map) or torchattacks' random / least-likely modes (targets drawn per pixel): the loss is
    descended and the two weights swap, as in cospgd's ``segpgd_scale(targeted=True)``.

    Args:
        model: Segmentation model (logits as a tensor, dict ``"out"`` or tuple with masks first).
        region: Region to attack: a name (``"left"``, ...) or a mask, see
            :mod:`regionattack.regions`; None (default) is the whole image.
        eps: L-inf radius. alpha: Step size. steps: Number of steps ``T``.
        random_start: Start from a uniform random point.
        perturb_region: Where the perturbation may be non-zero (default: everywhere).
        seed: Seed for the random start.

    Raises:
        ValueError: If ``region`` or ``perturb_region`` is an unknown name, or a setting is out of
            range.

    Example:
        >>> import segmentation_models_pytorch as smp, torch
        >>> net = smp.FPN("resnet18", encoder_weights=None, classes=3).eval()
        >>> atk = SegPGD(net, "left", steps=2, seed=0)
        >>> x = torch.rand(1, 3, 64, 64)
        >>> adv = atk(x)
        >>> bool((adv - x).abs().max() <= 8 / 255 + 1e-6), adv.shape
        (True, torch.Size([1, 3, 64, 64]))
    """

    def __init__(
        self,
        model: nn.Module,
        region: RegionLike | None = None,
        *,
        eps: float = 8 / 255,
        alpha: float = 2 / 255,
        steps: int = 10,
        random_start: bool = True,
        perturb_region: RegionLike | None = None,
        seed: int | None = None,
    ):
        super().__init__(
            "SegPGD",
            model,
            eps=eps,
            alpha=alpha,
            steps=steps,
            random_start=random_start,
            seed=seed,
        )
        for value in (region, perturb_region):
            if isinstance(value, str):
                as_mask(value, (2, 2))  # validates the name now rather than on the first call
        self.region = region
        self.perturb_region = perturb_region

    def forward(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        region: RegionLike | None = None,
    ) -> torch.Tensor:
        """Return adversarial images; ``region`` overrides the attack's region for this batch."""
        original = images
        images, labels, clean = self.prepare(images, labels)
        targets = self.attack_targets(images, labels, clean)
        weights = region_mean_weights(self.region if region is None else region, targets)
        allowed = None
        if self.perturb_region is not None:
            allowed = as_mask(
                self.perturb_region, tuple(images.shape[-2:]), images.shape[0], images.device
            )
        network = self.network()
        sign = -1.0 if self.targeted else 1.0

        def objective(adv: torch.Tensor, step: int) -> torch.Tensor:
            logits = model_logits(network(adv))
            scale = segpgd_weights(logits, targets, step, self.steps, self.targeted)
            return sign * weighted_cross_entropy(logits, targets, weights * scale)

        return self.finish(self.pgd(images, objective, allowed), original)
