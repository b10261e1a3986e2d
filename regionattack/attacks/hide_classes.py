"""HideClasses: make chosen classes vanish from the prediction and keep the rest of it."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from regionattack.attacks.base import Problem
from regionattack.attacks.budget import BudgetLike
from regionattack.attacks.hiding import hiding
from regionattack.attacks.optimizers import OPTIMIZERS
from regionattack.attacks.region_attack import RegionAttack
from regionattack.attacks.registry import register
from regionattack.regions import RegionLike, class_ids


@register("HideClasses")
class HideClasses(RegionAttack):
    r"""L-inf PGD that paints ``classes`` over with their surroundings and keeps everything else.

    The region is where the clean prediction has one of ``classes`` (within ``region``, when
    given); inside it each pixel is driven to the *dynamic target* of Metzen et al. (ICCV 2017),
    the class of the nearest pixel of another class (:func:`~regionattack.hide_target`), and the
    outside keeps its clean prediction: RegionAttack's targeted objective
    ``-CE_in(target) - outside_weight * CE_out(clean)`` with its per-pixel weights, or, with
    ``max_outside``, the outside budget. Images without any of the classes are returned
    unchanged. Measure the result with :func:`~regionattack.metrics.hiding_measures`.

    Args:
        model: Segmentation model.
        classes: Class id or ids to hide (e.g. CamVid's car = 8, pedestrian = 9).
        region: Hide the classes only there (a name or a mask); None: everywhere.

    The other arguments (``eps``, ``alpha``, ``steps``, ``random_start``, ``perturb_region``,
    ``outside_weight``, ``flipped_weight``, ``outside_margin``, ``max_outside``, ``seed``,
    ``optimizer``) are those of :class:`~regionattack.RegionAttack`.

    Raises:
        ValueError: For no class, a negative or repeated class id, or a setting RegionAttack
            refuses; on the call, when a torchattacks targeted mode is set (the targets are the
            dynamic target).

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> x = torch.rand(2, 3, 32, 32)
        >>> adv = HideClasses(net, classes=[1], steps=2, seed=0)(x)
        >>> bool((adv - x).abs().max() <= 8 / 255 + 1e-6)
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
        random_start: bool = True,
        perturb_region: RegionLike | None = None,
        outside_weight: float = 1.0,
        flipped_weight: float = 4.0,
        outside_margin: float | None = None,
        max_outside: BudgetLike = None,
        seed: int | None = None,
        optimizer: str = "pgd-decay",
    ):
        super().__init__(
            model,
            region,
            eps=eps,
            alpha=alpha,
            steps=steps,
            random_start=random_start,
            perturb_region=perturb_region,
            outside_weight=outside_weight,
            flipped_weight=flipped_weight,
            outside_margin=outside_margin,
            max_outside=max_outside,
            seed=seed,
            optimizer=optimizer,
        )
        self.classes = class_ids(classes).tolist()

    def perturb(self, problem: Problem) -> torch.Tensor:
        """Hide the classes in each image that has them; return the others as they came."""
        if self.targeted:
            raise ValueError(
                "HideClasses sets its own targets (the dynamic target); call "
                "set_mode_default() instead of a targeted mode"
            )
        hidden = hiding(problem.clean, self.classes, problem.inside)
        self.budget_met = None
        if not bool(hidden.present.any()):
            return problem.images.clone()
        problem = dataclasses.replace(problem, inside=hidden.inside)
        adv = self.break_region(problem, hidden.target, targeted=True)
        if self.budget_met is not None:
            self.budget_met = self.budget_met | ~hidden.present
        return torch.where(hidden.present[:, None, None, None], adv, problem.images)
