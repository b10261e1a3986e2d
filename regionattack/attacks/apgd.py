"""APGD's step-size schedule and update (Croce & Hein, ICML 2020), for any per-image objective.

The segmentation attacks run it with ``optimizer="apgd"`` in place of fixed-step PGD: the step
starts at ``2 * eps`` per image and is halved at checkpoints where the objective stalled (fewer than
``rho`` of the steps since the last checkpoint raised it, or no new best since a checkpoint that did
not halve it), each halving restarting from the image's best iterate; updates carry momentum 0.75.
The image's best iterate is returned: the one with the highest success score when the objective
reports one, else the highest objective. It evaluates the objective as often as
PGD does (``steps`` forward and backward passes) plus one forward pass for the last iterate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from regionattack.attacks.objectives import project

MOMENTUM = 0.75
RHO = 0.75


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step: ``ceil(p_j * steps)``, ``p_j <= 1``.

    ``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``.

    Example:
        >>> apgd_checkpoints(100)
        [22, 41, 57, 70, 80, 87, 93, 99]
    """
    fractions = [0.0, 0.22]
    while True:
        following = fractions[-1] + max(fractions[-1] - fractions[-2] - 0.03, 0.06)
        if following > 1:
            break
        fractions.append(following)
    return sorted({math.ceil(round(p * steps, 9)) for p in fractions[1:]} - {0})


def apgd(
    images: torch.Tensor,
    delta: torch.Tensor,
    objective: Callable[[torch.Tensor, int], torch.Tensor],
    *,
    eps: float,
    steps: int,
    allowed: torch.Tensor | None = None,
    scores: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Ascend ``objective(adv, step)`` (a per-image (N,) loss) from ``images + delta`` with APGD.

    Args:
        images: (N, C, H, W) clean images in [0, 1].
        delta: Starting perturbation (zero, or a random start inside the ball).
        objective: Per-image objective to maximise; ``step`` is the iteration (0-based).
        eps: L-inf radius.
        steps: Gradient evaluations (as for PGD).
        allowed: (N or 1, H, W) pixels the perturbation may touch; None: all.
        scores: A dict the objective fills with ``"last"``, the (N,) success score of the iterate
            it was called on (e.g. :func:`~regionattack.attacks.objectives.success_score`); then
            the returned iterate is the one with the highest score, not the highest loss (the
            loss still steers the step size and the restarts).

    Returns:
        The best iterate of each image (detached), inside the ball, the allowed pixels and [0, 1].

    Example:
        >>> images = torch.full((2, 1, 1, 1), 0.5)
        >>> adv = apgd(images, torch.zeros_like(images), lambda x, s: -(x - 0.52).flatten(1).pow(2).sum(1),
        ...            eps=0.1, steps=20)
        >>> [round(v, 2) for v in adv.flatten().tolist()]
        [0.52, 0.52]
    """
    shape = (images.shape[0],) + (1,) * (images.ndim - 1)
    step_size = torch.full(shape, 2 * eps, device=images.device, dtype=images.dtype)
    checkpoints = set(apgd_checkpoints(steps))

    def evaluate(adv: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        adv = adv.detach().requires_grad_(True)
        loss = objective(adv, step)
        (grad,) = torch.autograd.grad(loss.sum(), adv)
        return loss.detach(), grad

    with torch.enable_grad():  # also when the caller runs under torch.no_grad()
        adv = images + delta
        loss, grad = evaluate(adv, 0)
        best, best_loss, best_grad = adv.detach(), loss, grad
        scored = scores is not None and "last" in scores
        output, output_score = best, (scores["last"] if scored else loss)
        previous = adv.detach()
        raised = torch.zeros_like(loss)  # steps since the last checkpoint that raised the loss
        halved_last = torch.zeros_like(loss, dtype=torch.bool)
        best_at_checkpoint = best_loss.clone()
        last_checkpoint = 0
        for step in range(1, steps + 1):
            momentum = MOMENTUM if step > 1 else 1.0
            moved = images + project(images, adv - images + step_size * grad.sign(), eps, allowed)
            update = adv + momentum * (moved - adv) + (1 - momentum) * (adv - previous)
            previous = adv.detach()
            adv = images + project(images, update - images, eps, allowed)
            if step < steps:
                new_loss, new_grad = evaluate(adv, step)
            else:  # the last iterate needs its value only
                with torch.no_grad():
                    new_loss, new_grad = objective(adv, step).detach(), grad
            raised += (new_loss > loss).to(raised.dtype)
            loss, grad = new_loss, new_grad
            better = loss > best_loss
            best = torch.where(better.view(shape), adv.detach(), best)
            best_grad = torch.where(better.view(shape), grad, best_grad)
            best_loss = torch.where(better, loss, best_loss)
            score = scores["last"] if scored else loss
            ahead = score > output_score
            output = torch.where(ahead.view(shape), adv.detach(), output)
            output_score = torch.where(ahead, score, output_score)
            if step in checkpoints and step < steps:
                window = step - last_checkpoint
                stalled = raised < RHO * window
                stalled |= ~halved_last & (best_at_checkpoint >= best_loss)
                step_size = torch.where(stalled.view(shape), step_size / 2, step_size)
                adv = torch.where(stalled.view(shape), best, adv)
                previous = torch.where(stalled.view(shape), best, previous)
                grad = torch.where(stalled.view(shape), best_grad, grad)
                loss = torch.where(stalled, best_loss, loss)
                halved_last, best_at_checkpoint = stalled, best_loss.clone()
                raised.zero_()
                last_checkpoint = step
    return output.detach()
