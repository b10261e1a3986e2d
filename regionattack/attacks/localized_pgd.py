"""LocalizedPGD: the region-confined attack of Marchiori Pietrosanti et al. (2025)."""

from __future__ import annotations

import torch
from torch import nn

from regionattack._checks import IGNORE_INDEX, check_positive_int
from regionattack.attacks.base import Problem, SegmentationAttack
from regionattack.attacks.objectives import pixel_cross_entropies, project, weighted_sum
from regionattack.attacks.registry import register
from regionattack.regions import RegionLike


@register("LocalizedPGD")
class LocalizedPGD(SegmentationAttack):
    r"""L-inf sign steps on the sum of per-patch normalised gradients, confined to the region.

    Marchiori Pietrosanti, Rossolini, Biondi and Buttazzo, "Benchmarking the Spatial Robustness
    of DNNs via Natural and Adversarial Localized Corruptions" (arXiv:2504.01632, 2025): the
    perturbation may be non-zero only inside a mask, and the image is cut into a grid of patches;
    each patch's mean cross-entropy gives its own input gradient, which is normalised to unit L2
    norm before the gradients are summed and a signed step of ``alpha`` is taken, so that no patch
    (a large easy area) drowns the others. Here the mask and the pixels whose loss counts are the
    region (the perturbation may be confined elsewhere with ``perturb_region``); one forward and
    one backward pass per patch at each step.

    Args:
        model: Segmentation model.
        region: Region to break (a name or a mask); None: the whole image.
        eps: L-inf radius. alpha: Step (default ``eps / 4``). steps: Steps.
        patches: ``(rows, columns)`` of the patch grid (default ``(2, 4)``: the paper's 512-pixel
            patches on 1024 x 2048 Cityscapes images).
        perturb_region: Where the perturbation may be non-zero (default: ``region``).
        random_start: Start from a random point (off, as in the paper).
        seed: Seed for the random start.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> x = torch.rand(1, 3, 32, 32)
        >>> adv = LocalizedPGD(net, "left", steps=2)(x)
        >>> float((adv - x)[..., 16:].abs().max())  # confined to the left half
        0.0
    """

    def __init__(
        self,
        model: nn.Module,
        region: RegionLike | None = None,
        *,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        patches: tuple[int, int] = (2, 4),
        perturb_region: RegionLike | None = None,
        random_start: bool = False,
        seed: int | None = None,
    ):
        super().__init__(
            "LocalizedPGD", model, eps=eps, alpha=alpha, steps=steps, random_start=random_start,
            seed=seed,
        )  # fmt: skip
        self.check_region_names(region, perturb_region)
        if not isinstance(patches, (tuple, list)) or len(patches) != 2:
            raise ValueError(f"patches must be (rows, columns); got {patches!r}")
        self.patches = (
            check_positive_int(patches[0], "patch rows"),
            check_positive_int(patches[1], "patch columns"),
        )
        self.region = region
        self.perturb_region = perturb_region

    def perturb(self, problem: Problem) -> torch.Tensor:
        """Signed steps on the summed, per-patch normalised gradients of the region's loss."""
        images, clean = problem.images, problem.clean
        targets = self.attack_targets(images, problem.labels, clean)
        allowed = problem.inside if problem.allowed is None else problem.allowed
        counted = problem.inside & (targets != IGNORE_INDEX)
        weights = [
            patch / patch.flatten(1).sum(1).clamp_min(1)[:, None, None]
            for patch in (counted & cell for cell in self.patch_cells(images))
            if bool(patch.any())
        ]
        sign = -1.0 if self.targeted else 1.0
        delta = self.initial_delta(images, self.eps, allowed)
        with torch.enable_grad():
            for _ in range(self.steps):
                adv = (images + delta).requires_grad_(True)
                (losses,) = pixel_cross_entropies(self.logits(adv), targets)
                total = torch.zeros_like(images)
                for index, weight in enumerate(weights):
                    (grad,) = torch.autograd.grad(
                        weighted_sum(losses, weight).sum(),
                        adv,
                        retain_graph=index < len(weights) - 1,
                    )
                    grad = grad * allowed[:, None]
                    norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
                    total = total + grad / norm
                delta = project(images, delta + sign * self.alpha * total.sign(), self.eps, allowed)
        return (images + delta).detach()

    def patch_cells(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(1, H, W) bool masks of the grid's patches."""
        height, width = images.shape[-2:]
        rows, columns = self.patches
        cells = []
        for i in range(rows):
            for j in range(columns):
                cell = torch.zeros(1, height, width, dtype=torch.bool, device=images.device)
                top, bottom = i * height // rows, (i + 1) * height // rows
                left, right = j * width // columns, (j + 1) * width // columns
                cell[:, top:bottom, left:right] = True
                cells.append(cell)
        return cells
