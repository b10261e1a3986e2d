"""SegPGD (Gu et al., ECCV 2022), on the whole image or restricted to a region."""

from __future__ import annotations

import torch

from regionattack.attacks.objectives import segpgd_weights
from regionattack.attacks.pixel_weighted import PixelWeightedPGD
from regionattack.attacks.registry import register


@register("SegPGD")
class SegPGD(PixelWeightedPGD):
    r"""L-inf PGD on the SegPGD loss: cross-entropy re-weighted between right and wrong pixels.

    Gu et al., "SegPGD: An Effective and Efficient Adversarial Attack for Evaluating and Boosting
    Segmentation Robustness" (ECCV 2022). At step ``t`` of ``T`` (0-based) each pixel's
    cross-entropy is weighted :math:`1 - \lambda_t` if the current prediction equals the target
    and :math:`\lambda_t` otherwise, :math:`\lambda_t = t / (2T)`: early steps push the pixels
    still classified correctly, later ones all pixels more evenly (see
    :func:`~regionattack.attacks.objectives.segpgd_weights`).

    With ``region=None`` this is the whole-image attack of the paper (the loss is cospgd's
    ``segpgd_scale``). With a region it is the *region-masked* variant used as a peer in the
    benchmarks: pixels outside the region get weight 0 and the loss is averaged over the valid
    pixels of the region. Pixels labelled 255 are never attacked or counted.

    Untargeted by default (moving away from the labels, or from the clean predictions when no
    labels are given). Targeted with ``set_mode_targeted_by_label`` (labels are the (N, H, W) target
    map) or torchattacks' random / least-likely modes (targets drawn per pixel): the loss is
    descended and the two weights swap, as in cospgd's ``segpgd_scale(targeted=True)``.

    Arguments and errors are those of
    :class:`~regionattack.attacks.pixel_weighted.PixelWeightedPGD`.

    Example:
        >>> import torch
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> atk = SegPGD(net, "left", steps=2, seed=0)
        >>> x = torch.rand(1, 3, 64, 64)
        >>> adv = atk(x)
        >>> bool((adv - x).abs().max() <= 8 / 255 + 1e-6), adv.shape
        (True, torch.Size([1, 3, 64, 64]))
    """

    def pixel_scale(self, logits: torch.Tensor, targets: torch.Tensor, step: int) -> torch.Tensor:
        """SegPGD's weights: ``1 - lambda_t`` on pixels still right, ``lambda_t`` on the others."""
        return segpgd_weights(logits, targets, step, self.steps, self.targeted)
