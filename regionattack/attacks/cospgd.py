"""CosPGD (Agnihotri et al., 2023), on the whole image or restricted to a region."""

from __future__ import annotations

import torch

from regionattack.attacks.objectives import cospgd_weights
from regionattack.attacks.pixel_weighted import PixelWeightedPGD
from regionattack.attacks.registry import register


@register("CosPGD")
class CosPGD(PixelWeightedPGD):
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

    Arguments and errors are those of
    :class:`~regionattack.attacks.pixel_weighted.PixelWeightedPGD`.

    Example:
        >>> import torch
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> atk = CosPGD(net, "left", steps=2, seed=0)
        >>> x = torch.rand(1, 3, 64, 64)
        >>> adv = atk(x)
        >>> bool((adv - x).abs().max() <= 8 / 255 + 1e-6), adv.shape
        (True, torch.Size([1, 3, 64, 64]))
    """

    def pixel_scale(self, logits: torch.Tensor, targets: torch.Tensor, step: int) -> torch.Tensor:
        """CosPGD's weights: the cosine between the softmax and the one-hot target."""
        del step
        return cospgd_weights(logits, targets, self.targeted)
