"""Loss functions and the projection step shared by the attacks; each can be tested alone."""

from __future__ import annotations

import torch

from regionattack.ranking import pixel_loss


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
    return (pixel_loss(logits, targets) * weights).flatten(1).sum(dim=1)


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
