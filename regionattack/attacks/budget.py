"""An outside budget: how many outside pixels an attack may change, and the iterate that keeps to it.

A region attack weighs "break inside" against "keep outside" with a weight whose right value
depends on the model and the image. A budget states the goal instead: break as much as possible
inside while changing at most a fraction of the outside pixels (or as many as uniform noise of the
same radius changes on that image). :class:`OutsideBudget` turns the weight into a per-image
multiplier raised while an image exceeds its budget and lowered while it keeps it (as augmented-
Lagrangian attacks such as ALMA steer their constraint), and keeps, per image, the most damaging
iterate within the budget, or the least violating one when none is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from regionattack.attacks.objectives import project
from regionattack.latent import predicted_classes
from regionattack.metrics import changed_pixels

BudgetLike = float | str | None

#: factor the multiplier is raised by after an iterate over budget (lowered by after one within)
RAISE, LOWER = 2.0, 1.5


def check_budget(max_outside: object) -> BudgetLike:
    """``max_outside`` if it is None, ``"noise"`` or a fraction in [0, 1].

    Example:
        >>> check_budget(0.01), check_budget("noise"), check_budget(None)
        (0.01, 'noise', None)
    """
    if max_outside is None or max_outside == "noise":
        return max_outside
    if isinstance(max_outside, bool) or not isinstance(max_outside, (int, float)):
        raise TypeError(
            "max_outside must be a fraction of the outside pixels in [0, 1], 'noise' or None; "
            f"got {type(max_outside).__name__} {max_outside!r}"
        )
    if not (math.isfinite(max_outside) and 0 <= max_outside <= 1):
        raise ValueError(
            f"max_outside must be a fraction of the outside pixels in [0, 1]; got {max_outside} "
            "(for 1%, pass 0.01)"
        )
    return float(max_outside)


def changed_outside(
    predicted: torch.Tensor, clean: torch.Tensor, outside: torch.Tensor
) -> torch.Tensor:
    """(N,) fraction of the ``outside`` pixels whose class differs from ``clean`` (0 without any).

    :func:`~regionattack.metrics.changed_pixels` with every counted pixel on its outside side.
    """
    changed, counted = changed_pixels(predicted, clean, outside, torch.zeros_like(outside))
    return (changed[:, 1].double() / counted[:, 1].clamp_min(1)).float()


def noise_limit(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    clean: torch.Tensor,
    outside: torch.Tensor,
    eps: float,
    allowed: torch.Tensor | None,
    seed: int | None,
) -> torch.Tensor:
    """(N,) fraction of the outside pixels uniform noise of radius ``eps`` changes on each image."""
    generator = None if seed is None else torch.Generator(images.device).manual_seed(seed)
    noise = torch.rand(images.shape, generator=generator, device=images.device)
    noisy = images + project(images, (2 * noise - 1) * eps, eps, allowed)
    with torch.no_grad():
        predicted = predicted_classes(logits_of(noisy))
    return changed_outside(predicted, clean, outside)


class OutsideBudget:
    """Per image: the outside budget, the multiplier that follows it and the best iterate so far.

    Args:
        limit: (N,) largest fraction of the outside pixels allowed to change.
        weight: Starting multiplier of the outside term (the attack's ``outside_weight``).
        images: (N, C, H, W) clean images (the first candidate is the first iterate observed).
        clean: (N, H, W) clean predictions, which the outside should keep.
        outside: (N, H, W) bool valid pixels outside the region.
        broken: ``broken(predicted) -> (N, H, W)`` bool, the inside pixels the attack has broken
            (the damage is their count).

    Example:
        >>> clean = torch.zeros(1, 1, 2, dtype=torch.long)
        >>> outside = torch.tensor([[[False, True]]])
        >>> budget = OutsideBudget(torch.tensor([0.0]), 1.0, torch.zeros(1, 1, 1, 2), clean,
        ...                        outside, lambda p: (p != 0) & ~outside)
        >>> budget.observe(torch.ones(1, 1, 1, 2), torch.tensor([[[1, 1]]]))  # breaks both
        >>> budget.observe(torch.full((1, 1, 1, 2), 0.5), torch.tensor([[[1, 0]]]))  # keeps out
        >>> best, met = budget.result()
        >>> best.flatten().tolist(), met.tolist(), budget.weights.tolist()
        ([0.5, 0.5], [True], [1.3333333730697632])
    """

    def __init__(
        self,
        limit: torch.Tensor,
        weight: float,
        images: torch.Tensor,
        clean: torch.Tensor,
        outside: torch.Tensor,
        broken: Callable[[torch.Tensor], torch.Tensor],
    ):
        n = images.shape[0]
        self.limit = limit.to(images.device)
        self.weights = torch.full((n,), float(weight), device=images.device)
        self.clean, self.outside, self.broken = clean, outside, broken
        self.best = images.detach().clone()
        self.met = torch.zeros(n, dtype=torch.bool, device=images.device)
        self.damage = torch.full((n,), -1.0, device=images.device)
        self.excess = torch.full((n,), math.inf, device=images.device)

    def observe(self, adv: torch.Tensor, predicted: torch.Tensor) -> None:
        """Take one iterate and its predicted classes: keep it where it is the best yet, adapt."""
        excess = changed_outside(predicted, self.clean, self.outside) - self.limit
        damage = self.broken(predicted).flatten(1).sum(1).float()
        within = excess <= 0
        better = torch.where(
            within,
            ~self.met | (damage > self.damage),  # within budget: more damage wins
            ~self.met
            & ((excess < self.excess) | ((excess == self.excess) & (damage > self.damage))),
        )
        self.best = torch.where(better[:, None, None, None], adv.detach(), self.best)
        self.damage = torch.where(better, damage, self.damage)
        self.excess = torch.where(better, excess, self.excess)
        self.met = self.met | within
        self.weights = torch.where(within, self.weights / LOWER, self.weights * RAISE)

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(best images, (N,) bool: whether each kept its budget)."""
        return self.best, self.met
