"""SEA, the Segmentation Ensemble Attack: APGD on three losses, the worst case per image."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from regionattack._checks import IGNORE_INDEX
from regionattack.attacks.apgd import apgd
from regionattack.attacks.base import Problem, SegmentationAttack
from regionattack.attacks.objectives import (
    class_balanced_weights,
    js_divergence_to_one_hot,
    pixel_cross_entropies,
    project,
    success_score,
    weighted_sum,
)
from regionattack.attacks.registry import register
from regionattack.latent import model_logits, predicted_classes
from regionattack.ranking import mean_weights
from regionattack.regions import RegionLike

SEA_LOSSES = ("mce", "mce-bal", "js")
_RADIUS_SCHEDULE = ((2.0, 0.3), (1.5, 0.3), (1.0, 0.4))


def sea_schedule(steps: int, eps: float) -> list[tuple[float, int]]:
    """SEA's radius schedule: ``(radius, steps)`` stages at 2, 1.5 and 1 ``eps``, steps 3:3:4.

    The first two stages get ``int(0.3 * steps)`` steps each, the last the rest; stages with no
    step are left out, so the last stage (at ``eps``) always runs.

    Example:
        >>> sea_schedule(300, 0.1)
        [(0.2, 90), (0.15000000000000002, 90), (0.1, 120)]
        >>> sea_schedule(3, 0.1)
        [(0.1, 3)]
    """
    counts = [int(share * steps) for _, share in _RADIUS_SCHEDULE[:-1]]
    counts.append(steps - sum(counts))
    return [
        (factor * eps, count)
        for (factor, _), count in zip(_RADIUS_SCHEDULE, counts, strict=True)
        if count > 0
    ]


@register("SEA")
class SEA(SegmentationAttack):
    """The Segmentation Ensemble Attack of Croce, Singh & Hein (ECCV 2024), whole image or region.

    "Towards Reliable Evaluation and Fast Training of Robust Semantic Segmentation Models": APGD
    run once per loss, each run with a radius that shrinks from ``2 * eps`` to ``1.5 * eps`` to
    ``eps`` over 3:3:4 of its steps (:func:`sea_schedule`; each stage starts from the previous
    stage's best iterate projected onto the smaller ball), and for every image the run that
    breaks the most pixels is returned. The losses, averaged over the valid pixels of the region:

    * ``"mce"``: masked cross-entropy, only on pixels still predicted as their label (a pixel
      already broken stops pulling the step);
    * ``"mce-bal"``: the same with each class present weighing equally
      (:func:`~regionattack.attacks.objectives.class_balanced_weights`);
    * ``"js"``: Jensen-Shannon divergence between the softmax and the one-hot label
      (:func:`~regionattack.attacks.objectives.js_divergence_to_one_hot`), which saturates on
      pixels confidently wrong.

    Each APGD run keeps, per image, the iterate with the most broken pixels in the region
    (:func:`~regionattack.attacks.objectives.success_score`), not the highest loss. With a region
    this is the region-masked SEA used as a peer of :class:`~regionattack.RegionAttack`; what
    happens outside the region is not its concern. Untargeted only.

    Labels are (N, H, W) class ids with 255 or -1 for pixels to ignore; without labels the clean
    prediction is attacked. The cost is ``len(losses) * steps`` forward and backward passes, plus
    one forward pass per loss.

    Args:
        model: Segmentation model (logits as a tensor, dict ``"out"`` or tuple with masks first).
        eps: L-inf radius in image units [0, 1].
        steps: APGD steps per loss (the paper uses 300; the three radius stages share them).
        region: Region to break: a name (``"left"``, ...) or a mask, see
            :mod:`regionattack.regions`; None (default) is the whole image.
        losses: Losses of the ensemble, a subset of :data:`SEA_LOSSES` (or one name).
        perturb_region: Where the perturbation may be non-zero (default: everywhere).
        random_start: Start each run from a uniform random point in the first stage's ball.
        seed: Seed for the random start (an int or None).

    Raises:
        ValueError: For an unknown or repeated loss, no loss, an unknown region name, or a setting
            out of range.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> images = torch.rand(2, 3, 16, 16)
        >>> attack = SEA(TinySegmenter(), eps=8 / 255, steps=5, region="left", seed=0)
        >>> adv = attack(images)
        >>> bool((adv - images).abs().max() <= 8 / 255 + 1e-6), adv.shape
        (True, torch.Size([2, 3, 16, 16]))
    """

    name_options = {"losses": SEA_LOSSES}
    repeatable_name_options = ("losses",)

    def __init__(
        self,
        model: nn.Module,
        region: RegionLike | None = None,
        *,
        eps: float = 8 / 255,
        steps: int = 300,
        losses: str | tuple[str, ...] | list[str] = SEA_LOSSES,
        perturb_region: RegionLike | None = None,
        random_start: bool = True,
        seed: int | None = None,
    ):
        super().__init__(
            "SEA",
            model,
            eps=eps,
            steps=steps,
            random_start=random_start,
            seed=seed,
            optimizer="apgd",
        )
        self.supported_mode = ["default"]
        self.check_region_names(region, perturb_region)
        self.region = region
        self.perturb_region = perturb_region
        self.losses = check_losses(losses)

    def set_up(self, images, labels, region, clean) -> Problem:
        """As every attack's, with SEA's ignore index -1 read as 255."""
        if isinstance(labels, torch.Tensor) and not labels.is_floating_point():
            labels = labels.masked_fill(labels == -1, IGNORE_INDEX)
        return super().set_up(images, labels, region, clean)

    def perturb(self, problem: Problem) -> torch.Tensor:
        """Run APGD once per loss; per image, the run that breaks the most pixels."""
        images, clean, inside, allowed = (
            problem.images,
            problem.clean,
            problem.inside,
            problem.allowed,
        )
        targets = clean if problem.labels is None else problem.labels
        valid = targets != IGNORE_INDEX
        network = self.network()

        def score(adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """Logits, predicted classes and success score of ``adv`` (one forward pass)."""
            logits = model_logits(network(adv), adv.shape[-2:])
            predicted = predicted_classes(logits.detach())
            return logits, predicted, success_score(predicted, targets, clean, inside, valid)

        worst, worst_score = images, torch.full((images.shape[0],), -float("inf"))
        worst_score = worst_score.to(images.device)
        for loss in self.losses:
            pixel_weights = (
                class_balanced_weights(targets, inside)
                if loss == "mce-bal"
                else mean_weights(inside[None], valid)[0]
            )
            adv = self._run(images, loss, pixel_weights, targets, allowed, score)
            with torch.no_grad():
                final = score(adv)[2]
            better = final > worst_score
            worst = torch.where(better.view(-1, 1, 1, 1), adv, worst)
            worst_score = torch.maximum(final, worst_score)
        return worst

    def _run(
        self,
        images: torch.Tensor,
        loss: str,
        pixel_weights: torch.Tensor,
        targets: torch.Tensor,
        allowed: torch.Tensor | None,
        score: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        """One APGD run on ``loss`` through the radius schedule; the last stage's best iterate."""
        scores: dict[str, torch.Tensor] = {}

        def objective(adv: torch.Tensor, step: int) -> torch.Tensor:
            del step
            logits, predicted, scores["last"] = score(adv)
            if loss == "js":
                return weighted_sum(js_divergence_to_one_hot(logits, targets), pixel_weights)
            (cross_entropy,) = pixel_cross_entropies(logits, targets)
            return weighted_sum(cross_entropy, pixel_weights * (predicted == targets))

        schedule = sea_schedule(self.steps, self.eps)
        delta = self.initial_delta(images, schedule[0][0], allowed)
        for radius, steps in schedule:
            delta = project(images, delta, radius, allowed)
            adv = apgd(
                images, delta, objective, eps=radius, steps=steps, allowed=allowed, scores=scores
            )
            delta = adv - images
        return adv


def check_losses(losses: object) -> tuple[str, ...]:
    """Return SEA's losses as a tuple, refusing unknown, repeated or no losses.

    Example:
        >>> check_losses("js"), check_losses(["mce", "js"])
        (('js',), ('mce', 'js'))
    """
    chosen = (losses,) if isinstance(losses, str) else tuple(losses)  # type: ignore[arg-type]
    unknown = [name for name in chosen if name not in SEA_LOSSES]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"losses must be distinct names from {list(SEA_LOSSES)}, at least one; got "
            f"{list(chosen)}"
        )
    return chosen
