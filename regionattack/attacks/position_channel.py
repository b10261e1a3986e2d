"""PositionChannelAttack: an input perturbation that suppresses or mirrors chosen latent channels."""

from __future__ import annotations

import torch
from torch import nn

from regionattack._checks import check_choice
from regionattack.ablation import ChannelsLike, channel_mask, check_channels
from regionattack.attacks.base import Problem, SegmentationAttack
from regionattack.attacks.objectives import channel_distance
from regionattack.attacks.optimizers import OPTIMIZERS
from regionattack.attacks.registry import register
from regionattack.latent import (
    checked_latent,
    checked_logits,
    find_layer,
    latent_of,
    layer_hook,
    model_logits,
    select_latent,
)
from regionattack.ranking import ChannelRanking, check_ranking_matches, default_k
from regionattack.regions import RegionLike

MODES = ("suppress", "flip")


@register("PositionChannelAttack")
class PositionChannelAttack(SegmentationAttack):
    """L-inf PGD on the latent alone: drive ``channels`` to zero (``"suppress"``) or to their mirror.

    ``"suppress"`` realises the paper's channel zeroing as an input perturbation; ``"flip"`` pushes
    each chosen channel's map towards its horizontally mirrored clean map, so the position it
    encodes points to the wrong side. The loss is minus the squared distance of the chosen channels
    to that target, divided by their clean energy; no labels are needed and only the network up to
    the latent runs at each step.

    Args:
        model: Segmentation model.
        channels: Channel ids (shared or (N, k) per sample), a bool mask, or a
            :class:`~regionattack.ChannelRanking` (its top ``k``) made on this model and latent
            layer; to reuse another model's channels on purpose, pass ``ranking.top(k)``.
        region: The region whose channels these are, kept as ``region`` for the caller (the
            channels, not the region, decide where the damage goes).
        eps: L-inf radius in image units [0, 1]. alpha: Step size (default ``eps / 4``). steps: Number of steps.
        random_start: Start from a uniform random point.
        mode: ``"suppress"`` (default) or ``"flip"``.
        k: Channels taken from a ranking (default: 5% of the channels).
        layer: Latent layer name (default: the architecture's).
        seed: Seed for the random start (an int or None).
        optimizer: ``"pgd"``, ``"pgd-decay"`` or ``"apgd"`` (see
            :class:`~regionattack.SegmentationAttack`).

    Raises:
        TypeError: If ``channels`` is not a selection (see
            :func:`~regionattack.ablation.check_channels`) or a setting has the wrong type.
        ValueError: When built, for an empty selection, a ranking made on another layer or model
            (see :func:`~regionattack.ranking.check_ranking_matches`) or a setting out of range;
            on the first call, for ids beyond the latent's channels or a per-sample selection that
            is empty for some image.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> atk = PositionChannelAttack(net, [0, 5, 7], steps=2, seed=0)
        >>> atk(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """

    name_options = {"optimizer": OPTIMIZERS}
    ranking_argument = "channels"

    def __init__(
        self,
        model: nn.Module,
        channels: ChannelsLike | ChannelRanking,
        *,
        region: RegionLike | None = None,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        random_start: bool = True,
        mode: str = "suppress",
        k: int | None = None,
        layer: str | None = None,
        seed: int | None = None,
        optimizer: str = "pgd",
    ):
        super().__init__(
            "PositionChannelAttack",
            model,
            eps=eps,
            alpha=alpha,
            steps=steps,
            random_start=random_start,
            seed=seed,
            optimizer=optimizer,
        )
        self.supported_mode = ["default"]
        self.check_region_names(region)
        self.region = region
        self.mode = check_choice(mode, "mode", MODES)
        self.layer = find_layer(model, layer)[0]
        if isinstance(channels, ChannelRanking):
            check_ranking_matches(channels, model, self.layer)
            channels = channels.top(k if k is not None else default_k(channels.num_channels))
        elif k is not None:
            raise ValueError("k is only used with a ChannelRanking; pass the channel ids directly")
        check_channels(channels)
        self.channels = channels

    needs_clean = False

    def clean_latent(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The latent of ``images`` from one whole forward pass whose logits and latent are checked.

        The steps run the model only up to the latent; this one pass also reads the logits, so a
        model whose predictions are NaN is refused (as by every attack) rather than attacked.

        Raises:
            ValueError: If the logits or the latent hold NaN or infinite values, or the latent
                layer runs more than once per forward pass.
        """
        seen: list[torch.Tensor] = []
        with torch.no_grad(), layer_hook(network, seen.append, self.layer, once=True):
            checked_logits(model_logits(network(images)))
        return checked_latent(select_latent(seen[0]), self.layer)

    def perturb(self, problem: Problem) -> torch.Tensor:
        """Drive the chosen channels to their target; labels and predictions are not needed."""
        images = problem.images
        network = self.network()
        clean = self.clean_latent(network, images)
        selected = channel_mask(self.channels, clean.shape[1], images.shape[0])
        target = torch.zeros_like(clean) if self.mode == "suppress" else clean.flip(-1)
        scale = channel_distance(
            clean,
            torch.zeros_like(clean),
            selected,
            torch.ones(images.shape[0], device=images.device),
        ).clamp_min(1e-12)

        def objective(adv: torch.Tensor, step: int) -> torch.Tensor:
            del step
            return -channel_distance(latent_of(network, adv, self.layer), target, selected, scale)

        return self.pgd(images, objective)
