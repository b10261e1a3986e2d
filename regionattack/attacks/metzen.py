"""Metzen: the dynamic-target hiding loss of Metzen et al. (ICCV 2017), per image."""

from __future__ import annotations

import torch
from torch import nn

from regionattack._checks import IGNORE_INDEX
from regionattack.attacks.base import Problem, SegmentationAttack
from regionattack.attacks.hiding import hiding
from regionattack.attacks.objectives import pixel_cross_entropies, weighted_sum
from regionattack.attacks.optimizers import OPTIMIZERS
from regionattack.attacks.registry import register
from regionattack.ranking import mean_weights
from regionattack.regions import RegionLike, class_ids

#: the weight of the hidden pixels' term; the value of TUBSRobustCheck's implementation of the paper
PAPER_WEIGHT = 0.9999


@register("Metzen")
class Metzen(SegmentationAttack):
    r"""L-inf iterative sign-gradient descent on Metzen et al.'s dynamic-target loss.

    Metzen, Kumar, Brox and Fischer, "Universal Adversarial Perturbations Against Semantic Image
    Segmentation" (ICCV 2017), Section 3: to hide ``classes``, the target of each of their pixels
    is the class of the nearest pixel of another class in the clean prediction
    (:func:`~regionattack.hide_target`), and every other pixel keeps its clean class. The loss
    descended is

    .. math:: \omega\, \overline{CE}_{in}(\text{target}) + (1 - \omega)\, \overline{CE}_{out}(\text{clean})

    with per-region means over the valid pixels (the paper averages both sums over the whole
    image). The paper computes one perturbation for many images; this is its loss on each image,
    the per-image peer of :class:`~regionattack.HideClasses`. Images without the classes are
    returned unchanged.

    Args:
        model: Segmentation model.
        classes: Class id or ids to hide.
        region: Hide them only there; None: everywhere.
        eps: L-inf radius in image units. alpha: Step (default ``eps / 4``). steps: Steps.
        weight: :math:`\omega`, default ``0.9999`` (:data:`PAPER_WEIGHT`).
        random_start: Start from a random point (off, as in the paper's iterative method).
        perturb_region: Where the perturbation may be non-zero.
        seed: Seed for the random start.
        optimizer: ``"pgd"`` (default: fixed sign steps, the paper's), ``"pgd-decay"`` or
            ``"apgd"``.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> x = torch.rand(2, 3, 32, 32)
        >>> bool((Metzen(net, classes=1, steps=2)(x) - x).abs().max() <= 8 / 255 + 1e-6)
        True
    """

    name_options = {"optimizer": OPTIMIZERS}
    classes_argument = "classes"

    def __init__(
        self,
        model: nn.Module,
        classes: int | list[int] | tuple[int, ...],
        *,
        region: RegionLike | None = None,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        weight: float = PAPER_WEIGHT,
        random_start: bool = False,
        perturb_region: RegionLike | None = None,
        seed: int | None = None,
        optimizer: str = "pgd",
    ):
        super().__init__(
            "Metzen",
            model,
            eps=eps,
            alpha=alpha,
            steps=steps,
            random_start=random_start,
            seed=seed,
            optimizer=optimizer,
        )
        self.supported_mode = ["default"]
        self.check_region_names(region, perturb_region)
        self.region = region
        self.perturb_region = perturb_region
        self.classes = class_ids(classes).tolist()
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ValueError(f"weight must be in [0, 1]; got {weight!r}")
        self.weight = float(weight)

    def perturb(self, problem: Problem) -> torch.Tensor:
        """Descend the loss on each image that has the classes; return the others unchanged."""
        images, clean = problem.images, problem.clean
        hidden = hiding(clean, self.classes, problem.inside)
        if not bool(hidden.present.any()):
            return images.clone()
        valid = (
            torch.ones_like(clean, dtype=torch.bool)
            if problem.labels is None
            else problem.labels != IGNORE_INDEX
        )
        inside_w, outside_w = mean_weights(torch.stack([hidden.inside, ~hidden.inside]), valid)

        def objective(adv: torch.Tensor, step: int) -> torch.Tensor:
            del step
            inside_ce, outside_ce = pixel_cross_entropies(self.logits(adv), hidden.target, clean)
            loss = self.weight * weighted_sum(inside_ce, inside_w)
            return -(loss + (1 - self.weight) * weighted_sum(outside_ce, outside_w))

        adv = self.pgd(images, objective, problem.allowed)
        return torch.where(hidden.present[:, None, None, None], adv, images)
