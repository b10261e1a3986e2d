"""UniformNoise: the no-effort reference, a random perturbation of the same L-inf radius."""

from __future__ import annotations

import torch
from torch import nn

from regionattack.attacks.base import Problem, SegmentationAttack
from regionattack.attacks.registry import register
from regionattack.regions import RegionLike


@register("UniformNoise")
class UniformNoise(SegmentationAttack):
    """Uniform random noise in the L-inf ball of radius ``eps``, clipped to the image box.

    Not an attack but the floor every attack is measured against: how many pixels change class
    when the input moves by ``eps`` in no particular direction. An attack that changes more pixels
    outside its region than this noise does is not quiet there. No gradient is computed; labels
    are accepted for torchattacks' API and unused.

    Args:
        model: Segmentation model (only checked; the noise does not depend on it).
        region: The region it is measured against, kept as ``region`` for the caller; the noise
            itself covers the whole image (or ``perturb_region``), whatever the region.
        eps: L-inf radius in image units [0, 1].
        steps: Accepted for the attacks' common signature; one draw is made whatever the value.
        perturb_region: Where the noise may be non-zero (default: everywhere).
        seed: Seed of the noise (reproducible runs); None uses torch's global generator.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> images = torch.rand(2, 3, 16, 16)
        >>> noisy = UniformNoise(TinySegmenter(), eps=8 / 255, seed=0)(images)
        >>> bool((noisy - images).abs().max() <= 8 / 255 + 1e-6)
        True
    """

    whole_image = True

    def __init__(
        self,
        model: nn.Module,
        region: RegionLike | None = None,
        *,
        eps: float = 8 / 255,
        steps: int = 1,
        perturb_region: RegionLike | None = None,
        seed: int | None = None,
    ):
        super().__init__("UniformNoise", model, eps=eps, alpha=0.0, steps=steps, seed=seed)
        self.supported_mode = ["default"]
        self.check_region_names(region, perturb_region)
        self.region = region
        self.perturb_region = perturb_region

    needs_clean = False

    def perturb(self, problem: Problem) -> torch.Tensor:
        """The images plus uniform noise in [-eps, eps] (within the allowed pixels)."""
        images = problem.images
        return images + self.initial_delta(images, self.eps, problem.allowed)
