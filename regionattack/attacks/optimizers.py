"""The optimizers every L-inf attack of this package ascends its objective with.

``"pgd"`` takes fixed signed-gradient steps of ``alpha``; ``"pgd-decay"`` the same with a step
that decays linearly from ``2 * alpha`` to ``2 * alpha / steps`` (large steps while the attack
moves far, small ones at the end, so the last iterate settles); ``"apgd"`` is APGD's adaptive
step with momentum and the best iterate (:mod:`regionattack.attacks.apgd`). Each takes a
per-image objective ``objective(adv_images, step) -> (N,)`` and projects every iterate onto the
ball, the allowed pixels and the image box.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from regionattack.attacks.apgd import apgd
from regionattack.attacks.objectives import project

OPTIMIZERS = ("pgd", "pgd-decay", "apgd")


def step_size(optimizer: str, alpha: float, step: int, steps: int) -> float:
    """The PGD step at iteration ``step`` (0-based) of ``steps``.

    Example:
        >>> step_size("pgd", 0.1, 3, 4), step_size("pgd-decay", 0.1, 0, 4), step_size("pgd-decay", 0.1, 3, 4)
        (0.1, 0.2, 0.05)
    """
    if optimizer == "pgd-decay":
        return 2 * alpha * (1 - step / steps)
    return alpha


def ascend(
    images: torch.Tensor,
    delta: torch.Tensor,
    objective: Callable[[torch.Tensor, int], torch.Tensor],
    *,
    optimizer: str,
    eps: float,
    alpha: float,
    steps: int,
    allowed: torch.Tensor | None = None,
    scores: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Ascend ``objective`` from ``images + delta``; return the adversarial images (detached).

    ``allowed`` (N or 1, H, W) confines where the perturbation may be non-zero. With
    ``optimizer="apgd"`` the image's best iterate is returned: by the success score the objective
    writes to ``scores["last"]`` when it does, else by the objective; ``alpha`` is not used.

    Example:
        >>> images = torch.full((1, 1, 2, 2), 0.5)
        >>> adv = ascend(images, torch.zeros_like(images), lambda x, step: x.sum(dim=(1, 2, 3)),
        ...              optimizer="pgd", eps=0.1, alpha=0.05, steps=3)
        >>> [round(v, 4) for v in adv.flatten().tolist()]
        [0.6, 0.6, 0.6, 0.6]
    """
    if optimizer == "apgd":
        return apgd(images, delta, objective, eps=eps, steps=steps, allowed=allowed, scores=scores)
    with torch.enable_grad():  # also when the caller runs under torch.no_grad()
        for step in range(steps):
            adv = (images + delta).requires_grad_(True)
            loss = objective(adv, step).sum()
            (grad,) = torch.autograd.grad(loss, adv)
            size = step_size(optimizer, alpha, step, steps)
            delta = project(images, delta + size * grad.sign(), eps, allowed)
    return (images + delta).detach()
