"""CosPGD (Agnihotri et al., 2023), on the whole image or restricted to a region."""

from __future__ import annotations

import torch
from torch import nn

from regionattack.attacks.base import SegmentationAttack
from regionattack.attacks.objectives import (
    cospgd_weights,
    region_mean_weights,
    weighted_cross_entropy,
)
from regionattack.latent import model_logits
from regionattack.regions import RegionLike, as_mask


class CosPGD(SegmentationAttack):
    """L-inf PGD on the CosPGD loss: cross-entropy scaled by the cosine to the target.

    Agnihotri et al., "CosPGD: a unified white-box adversarial attack for pixel-wise prediction
    tasks" (arXiv:2302.02213, 2023). Each pixel's cross-entropy is scaled by the detached cosine
    similarity between ``softmax(logits)`` and the one-hot target (one minus that when targeted),
    so pixels still predicted confidently right weigh most (see
    :func:`~regionattack.attacks.objectives.cospgd_weights`).

    With ``region=None`` this is the whole-image attack of the paper (the loss is cospgd's
    ``cospgd_scale`` averaged over the pixels). With a region it is the *region-masked* variant
    used as a peer in the benchmarks: pixels outside the region get weight 0 and the loss is
    averaged over the valid pixels of the region. Pixels labelled 255 are never attacked or
    counted.

    Untargeted by default (moving away from the labels, or from the clean predictions when no
    labels are given). Targeted with ``set_mode_targeted_by_label`` (labels are the (N, H, W) target
    map) or torchattacks' random / least-likely modes (targets drawn per pixel): the loss, scaled by
    ``1 - cos``, is descended, as in cospgd's ``cospgd_scale(targeted=True)``.

    Args:
        model: Segmentation model (logits as a tensor, dict ``"out"`` or tuple with masks first).
        region: Region to attack: a name (``"left"``, ...) or a mask, see
            :mod:`regionattack.regions`; None (default) is the whole image.
        eps: L-inf radius. alpha: Step size. steps: Number of steps.
        random_start: Start from a uniform random point.
        perturb_region: Where the perturbation may be non-zero (default: everywhere).
        seed: Seed for the random start.

    Raises:
        ValueError: If ``region`` or ``perturb_region`` is an unknown name, or a setting is out of
            range.

    Example:
        >>> import segmentation_models_pytorch as smp, torch
        >>> net = smp.FPN("resnet18", encoder_weights=None, classes=3).eval()
        >>> atk = CosPGD(net, "left", steps=2, seed=0)
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
            "CosPGD",
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
            del step
            logits = model_logits(network(adv))
            scale = cospgd_weights(logits, targets, self.targeted)
            return sign * weighted_cross_entropy(logits, targets, weights * scale)

        return self.finish(self.pgd(images, objective, allowed), original)
