"""Loss functions and the projection step shared by the attacks; each can be tested alone."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from regionattack._checks import IGNORE_INDEX
from regionattack.latent import predicted_classes, resize_logits
from regionattack.ranking import mean_weights, pixel_loss
from regionattack.regions import RegionLike, as_mask


def weighted_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Sum over pixels of ``weights * CE(logits, targets)``, one value per image (N,).

    Pixels labelled 255 contribute 0. Use :func:`regionattack.ranking.mean_weights` to average over a
    region.

    Example:
        >>> weighted_cross_entropy(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]]),
        ...                        torch.tensor([[[0.5, 0.5]]])).tolist()
        [0.6931471824645996]
    """
    return weighted_sum(pixel_loss(logits, targets), weights)


def weighted_sum(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum over pixels of ``weights * values`` (N, H, W), one value per image (N,).

    Example:
        >>> weighted_sum(torch.ones(1, 1, 2), torch.tensor([[[0.5, 0.25]]])).tolist()
        [0.75]
    """
    return (values * weights).flatten(1).sum(dim=1)


def pixel_cross_entropies(logits: torch.Tensor, *targets: torch.Tensor) -> list[torch.Tensor]:
    """Per-pixel cross-entropy (N, H, W) against each target map, from one shared log-softmax.

    Each result equals :func:`regionattack.ranking.pixel_loss` of that target map, value for value
    (pixels labelled 255 get 0), but the log-softmax over the classes is computed, kept for the
    backward pass and back-propagated once instead of once per map. Where, at every pixel, at most
    one of the losses built on the results carries a non-zero weight (RegionAttack's inside and
    outside terms), the input gradient is also the same, bit for bit.

    Args:
        logits: (N, K, H, W) logits at the targets' size.
        *targets: (N, H, W) int64 label or target maps, 255 = ignore.

    Returns:
        One float32 (N, H, W) tensor per target map.

    Example:
        >>> logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]])
        >>> [[round(v, 4) for v in ce.flatten().tolist()]
        ...  for ce in pixel_cross_entropies(logits, torch.tensor([[[0, 255]]]),
        ...                                  torch.tensor([[[1, 1]]]))]
        [[0.1269, 0.0], [2.1269, 0.6931]]
    """
    log_probs = F.log_softmax(logits.float(), dim=1)
    losses = []
    for target in targets:
        index = target.clamp(max=log_probs.shape[1] - 1)[:, None]
        picked = log_probs.gather(1, index)[:, 0]
        losses.append(torch.where(target == IGNORE_INDEX, 0.0, -picked))
    return losses


def margin_shortfall(logits: torch.Tensor, targets: torch.Tensor, margin: float) -> torch.Tensor:
    r"""Per-pixel hinge (N, H, W): how far the target's logit lead falls short of ``margin``.

    :math:`\max(0,\ \kappa - (z_t - \max_{c \ne t} z_c))` with :math:`\kappa` = ``margin``: 0
    for a pixel that keeps its target class by at least ``margin`` logits, growing linearly as it
    comes closer to flipping and past it. Unlike the cross-entropy, pixels far from flipping
    contribute no gradient, so a term built on it spends the step on the pixels at risk.
    Pixels labelled 255 get 0.

    Args:
        logits: (N, K, H, W) logits at the targets' size, K >= 2.
        targets: (N, H, W) int64 class per pixel, 255 = ignore.
        margin: Lead in logits below which a pixel is penalised (>= 0).

    Example:
        >>> logits = torch.tensor([[[[3.0, 1.0, 0.0]], [[0.0, 0.9, 2.0]]]])
        >>> hinge = margin_shortfall(logits, torch.tensor([[[0, 0, 255]]]), 0.5)
        >>> [round(v, 4) for v in hinge.flatten().tolist()]
        [0.0, 0.4, 0.0]
    """
    logits = logits.float()
    index = targets.clamp(max=logits.shape[1] - 1)[:, None]
    own = logits.gather(1, index)[:, 0]
    rival = logits.scatter(1, index, float("-inf")).amax(dim=1)
    return torch.where(targets == IGNORE_INDEX, 0.0, (margin - (own - rival)).clamp_min(0))


def js_divergence_to_one_hot(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""Per-pixel Jensen-Shannon divergence (N, H, W) between the softmax and the one-hot target.

    SEA's third loss (Croce, Singh & Hein, ECCV 2024). Against a one-hot vector it depends on the
    target's probability :math:`p` alone:
    :math:`\ln 2 + \tfrac12\,(p \ln p - (1 + p) \ln(1 + p))`, from 0 (``p = 1``) to
    :math:`\ln 2` (``p = 0``): it stops growing once a pixel is confidently wrong, so the attack
    turns to the pixels still right. Pixels labelled 255 get 0.

    Example:
        >>> logits = torch.tensor([[[[9.0, 0.0, 0.0]], [[0.0, 0.0, 9.0]]]])
        >>> js = js_divergence_to_one_hot(logits, torch.tensor([[[0, 0, 255]]]))
        >>> [round(v, 4) for v in js.flatten().tolist()]
        [0.0, 0.2158, 0.0]
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    log_p = log_p.gather(1, targets.clamp(max=log_p.shape[1] - 1)[:, None])[:, 0]
    p = log_p.exp()
    js = math.log(2) + 0.5 * (p * log_p - (1 + p) * torch.log1p(p))
    return torch.where(targets == IGNORE_INDEX, 0.0, js)


def class_balanced_weights(targets: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Pixel weights (N, H, W) that give each class present in an image's region equal weight.

    A valid pixel of class ``c`` inside the region weighs ``1 / (C * n_c)``, where ``n_c`` counts
    the valid region pixels of class ``c`` in that image and ``C`` the classes present there, so
    each image's weights sum to 1 (0 for an image with no valid region pixel) and a small object
    weighs as much as the road around it: SEA's balanced masked cross-entropy.

    Args:
        targets: (N, H, W) int64 labels or clean predictions, 255 = ignore.
        inside: (N or 1, H, W) bool region.

    Example:
        >>> weights = class_balanced_weights(torch.tensor([[[0, 0, 0, 1, 255]]]),
        ...                                  torch.ones(1, 1, 5, dtype=torch.bool))
        >>> [round(v, 4) for v in weights.flatten().tolist()]
        [0.1667, 0.1667, 0.1667, 0.5, 0.0]
    """
    counted = (targets != IGNORE_INDEX) & inside.expand_as(targets)
    classes = torch.where(counted, targets, 0).flatten(1)
    counts = torch.zeros(
        targets.shape[0], int(classes.max()) + 1 if classes.numel() else 1, device=targets.device
    )
    counts.scatter_add_(1, classes, counted.flatten(1).float())
    present = (counts > 0).sum(dim=1, keepdim=True).clamp_min(1)
    per_class = torch.where(counts > 0, 1.0 / (counts * present), 0.0)
    weights = per_class.gather(1, classes) * counted.flatten(1)
    return weights.view_as(targets)


def region_mean_weights(region: RegionLike | None, targets: torch.Tensor) -> torch.Tensor:
    """Pixel weights (N, H, W) that average over the valid pixels of ``region``.

    Pixels outside the region and pixels labelled 255 get 0; the others ``1 / count``, where
    ``count`` is the number of valid region pixels of that image (an image with none gets all 0).

    Args:
        region: Region name or mask (see :func:`regionattack.regions.as_mask`); None is the whole
            image.
        targets: (N, H, W) int64 labels or target map, 255 = ignore.

    Raises:
        ValueError: If the region mask is empty or does not match the targets.

    Example:
        >>> region_mean_weights("left", torch.tensor([[[255, 1], [0, 1]]])).tolist()
        [[[0.0, 0.0], [1.0, 0.0]]]
    """
    size = tuple(targets.shape[-2:])
    if region is None:
        inside = torch.ones(1, *size, dtype=torch.bool, device=targets.device)
    else:
        inside = as_mask(region, size, targets.shape[0], targets.device)
    return mean_weights(inside[None], targets != IGNORE_INDEX)[0]


def channel_distance(
    latent: torch.Tensor, target: torch.Tensor, channels: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Squared distance between latents over selected channels, per image, divided by ``scale``.

    Args:
        latent: (N, K, h, w) current latent.
        target: (N, K, h, w) latent to reach.
        channels: (N or 1, K) bool mask of the channels that count.
        scale: (N,) positive normaliser (e.g. the clean energy of those channels).

    Example:
        >>> z = torch.ones(1, 2, 1, 1)
        >>> channel_distance(z, torch.zeros_like(z), torch.tensor([[True, False]]),
        ...                  torch.ones(1)).tolist()
        [1.0]
    """
    squared = (latent.float() - target.float()).pow(2).sum(dim=(2, 3))
    return (squared * channels.to(squared.dtype)).sum(dim=1) / scale


def success_score(
    predicted: torch.Tensor,
    targets: torch.Tensor,
    clean: torch.Tensor,
    inside: torch.Tensor,
    valid: torch.Tensor,
    *,
    targeted: bool = False,
) -> torch.Tensor:
    """How well each image's prediction meets a region attack's goal: higher is better.

    The count of valid pixels inside the region that are broken (untargeted: not the target;
    targeted: the target), then, as a tie-break below one pixel, minus the fraction of valid
    outside pixels whose prediction changed from ``clean``. APGD keeps each image's iterate with the
    highest score (not the highest loss, whose weights may change as pixels flip).

    Args:
        predicted: (N, H, W) predicted classes of the iterate.
        targets: (N, H, W) classes to move away from (or, targeted, to reach).
        clean: (N, H, W) clean prediction, which the outside should keep.
        inside: (N or 1, H, W) bool region.
        valid: (N, H, W) bool pixels that count.
        targeted: Whether success is reaching the target.

    Returns:
        (N,) float scores.

    Example:
        >>> t = torch.tensor([[[0, 0, 1, 1]]])
        >>> inside = torch.tensor([[[True, True, False, False]]])
        >>> score = success_score(torch.tensor([[[1, 0, 1, 0]]]), t, t, inside, t >= 0)
        >>> [round(v, 3) for v in score.tolist()]  # 1 broken inside, 1 of 2 changed outside
        [0.667]
    """
    hit = predicted == targets if targeted else predicted != targets
    inside = inside.expand_as(valid)
    broken = (hit & inside & valid).flatten(1).sum(1).double()
    outside = ~inside & valid
    changed = ((predicted != clean) & outside).flatten(1).sum(1).double()
    return (broken - changed / (outside.flatten(1).sum(1).double() + 1)).float()


def project(
    images: torch.Tensor, delta: torch.Tensor, eps: float, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """Project a perturbation onto the L-inf ball, the allowed pixels and the [0, 1] image box.

    Args:
        images: (N, C, H, W) clean images in [0, 1].
        delta: Perturbation of the same shape.
        eps: L-inf radius.
        allowed: (N or 1, H, W) bool mask of pixels that may change; None allows all.

    Returns:
        The projected perturbation ``delta'`` with ``images + delta'`` in [0, 1].

    Example:
        >>> d = project(torch.full((1, 1, 1, 2), 0.99), torch.full((1, 1, 1, 2), 0.5), 0.1,
        ...             torch.tensor([[[True, False]]]))
        >>> [round(v, 4) for v in d.flatten().tolist()]
        [0.01, 0.0]
    """
    delta = delta.clamp(-eps, eps)
    if allowed is not None:
        delta = delta * allowed[:, None].to(delta.dtype)
    return (images + delta).clamp(0, 1) - images


def _logits_at(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Detached float logits at the targets' size (resized bilinearly, like :func:`pixel_loss`)."""
    return resize_logits(logits.detach().float(), targets.shape[-2:])


def segpgd_weights(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step: int,
    steps: int,
    targeted: bool = False,
) -> torch.Tensor:
    r"""Per-pixel SegPGD scales (N, H, W) for step ``step`` (0-based) of ``steps``.

    Follows Gu et al., "SegPGD: An Effective and Efficient Adversarial Attack for Evaluating and
    Boosting Segmentation Robustness" (ECCV 2022), in the form of ``segpgd_scale`` of the cospgd
    package (Agnihotri et al.): with :math:`\lambda_t = t / (2T)` (the paper's
    :math:`(t - 1) / (2T)` for 1-based steps), a pixel whose current
    prediction equals its target gets :math:`1 - \lambda_t` and any other pixel :math:`\lambda_t`;
    targeted attacks swap the two. Pixels labelled 255 get 0. The scales carry no gradient.
    ``sum(segpgd_weights(...) * CE) / (H * W)`` is cospgd's ``segpgd_scale`` (sum over the batch).

    Args:
        logits: (N, K, h, w) logits; resized to the targets' size when they differ.
        targets: (N, H, W) int64 labels or target map, 255 = ignore.
        step: Current step ``t`` in ``[0, steps)``.
        steps: Total number of steps ``T``.
        targeted: Swap the weights of the two pixel groups (correct: target reached).

    Returns:
        Float32 tensor (N, H, W).

    Example:
        >>> logits = torch.tensor([[[[2.0, 0.0, 0.0]], [[0.0, 2.0, 2.0]]]])  # predicts 0, 1, 1
        >>> segpgd_weights(logits, torch.tensor([[[0, 0, 255]]]), step=1, steps=2).tolist()
        [[[0.75, 0.25, 0.0]]]
    """
    lam = step / (2 * steps)
    correct = predicted_classes(_logits_at(logits, targets)) == targets
    if targeted:
        correct = ~correct
    weights = torch.where(correct, 1.0 - lam, lam)
    return weights * (targets != IGNORE_INDEX)


def cospgd_weights(
    logits: torch.Tensor, targets: torch.Tensor, targeted: bool = False
) -> torch.Tensor:
    """Per-pixel CosPGD scales (N, H, W): cosine similarity of softmax and one-hot target.

    Follows Agnihotri et al., "CosPGD: a unified white-box adversarial attack for pixel-wise
    prediction tasks" (arXiv:2302.02213, 2023), as ``cospgd_scale`` of the cospgd package
    computes it for segmentation: ``cos(softmax(logits), one_hot(targets))`` untargeted, one
    minus that targeted, detached. Against a one-hot vector the cosine is ``p_target / ||p||_2``.
    Pixels labelled 255 get 0 (their label is clamped before the lookup, so they do not crash).
    ``cospgd_weights(...) * CE`` is cospgd's ``cospgd_scale(..., one_hot=True)``.

    Args:
        logits: (N, K, h, w) logits; resized to the targets' size when they differ.
        targets: (N, H, W) int64 labels or target map, 255 = ignore.
        targeted: Return ``1 - cos`` (reward moving towards the target).

    Returns:
        Float32 tensor (N, H, W) in [0, 1].

    Example:
        >>> logits = torch.zeros(1, 2, 1, 3)  # uniform softmax: cos = 0.5 / sqrt(0.5)
        >>> weights = cospgd_weights(logits, torch.tensor([[[0, 1, 255]]]))
        >>> [round(v, 4) for v in weights.flatten().tolist()]
        [0.7071, 0.7071, 0.0]
    """
    probs = _logits_at(logits, targets).softmax(dim=1)
    index = targets.clamp(max=probs.shape[1] - 1)[:, None]
    cosine = probs.gather(1, index)[:, 0] / probs.norm(dim=1)
    weights = 1.0 - cosine if targeted else cosine
    return weights * (targets != IGNORE_INDEX)
