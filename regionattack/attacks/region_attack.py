"""RegionAttack: break the prediction inside a region, keep it outside."""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

from regionattack._checks import IGNORE_INDEX, check_choice, check_k, check_nonnegative_float
from regionattack.ablation import ChannelsLike, ablate, channel_mask, check_channels, replay_layer
from regionattack.attacks.base import Problem, SegmentationAttack
from regionattack.attacks.budget import BudgetLike, OutsideBudget, check_budget, noise_limit
from regionattack.attacks.objectives import (
    channel_distance,
    margin_shortfall,
    pixel_cross_entropies,
    success_score,
    weighted_sum,
)
from regionattack.attacks.optimizers import OPTIMIZERS
from regionattack.attacks.registry import register
from regionattack.latent import (
    edit_latent,
    find_layer,
    latent_of,
    model_logits,
    predicted_classes,
    select_latent,
)
from regionattack.ranking import (
    ChannelRanking,
    check_ranking_matches,
    default_k,
    gradient_effects,
    mean_weights,
    region_scores,
)
from regionattack.regions import RegionLike

OBJECTIVES = ("segmentation", "channels", "both")

#: with an outside budget, the last perturbation scaled by these is also a candidate (one forward
#: pass each): a shorter perturbation keeps part of the damage and changes less outside
SHRINK = (0.7, 0.5, 0.35, 0.25)


@register("RegionAttack")
class RegionAttack(SegmentationAttack):
    r"""L-inf PGD that degrades segmentation inside ``region`` and keeps the prediction outside.

    Objectives (ascended by each step; ``CE_R(t)`` is the mean cross-entropy over the valid pixels
    of ``R`` w.r.t. the per-pixel map ``t``):

    * ``"segmentation"``: ``CE_in(y) - outside_weight * CE_out(clean)`` where ``y`` are the labels
      (or the clean predictions when no labels are given) and ``clean`` the clean predictions;
      targeted: ``-CE_in(target) - outside_weight * CE_out(clean)``. Two per-pixel weights, set
      anew at every step from the current prediction, spend the budget where it matters: inside,
      pixels already broken weigh ``done_weight`` instead of 1 (untargeted only), so the step
      pushes the pixels not yet broken; outside, pixels whose prediction has
      changed weigh ``1 + flipped_weight``, so the step restores them first (their measured
      effect: docs/results/camvid.md, ``benchmarks/region_attack_weights.py``).
      With ``outside_margin`` set, the outside term is the hinge
      :func:`~regionattack.attacks.objectives.margin_shortfall` instead of the cross-entropy: a
      pixel counts only while the clean class leads the runner-up by less than ``outside_margin``
      logits, so the step spends nothing on pixels far from flipping. Swept over
      ``outside_weight``, it traded less drop inside for fewer changed pixels outside than the
      cross-entropy on two CamVid models (``benchmarks/region_strength.py``).
    * ``"channels"``: label-free. The region's top-``k`` position channels (ranked per image on the
      batch with :func:`~regionattack.ranking.gradient_effects`, or given as ``channels``) are driven
      towards zero and the others kept at their clean values: the paper's zeroing realised as an
      input perturbation. The loss is minus the squared distance to that ablated latent, divided by
      the clean energy of the chosen channels.
    * ``"both"``: the sum of the two.

    ``"segmentation"`` is the default and by far the strongest of the three on the demo model and on
    CamVid; ``"channels"`` is weak, and ``"both"`` is dominated by its channel term (README,
    Results).

    Pixels labelled 255 are never attacked or counted. ``perturb_region`` confines where the
    perturbation may be non-zero, so perturbing one part of the image to break another (an indirect
    attack) is one argument away.

    Args:
        model: Segmentation model (logits as a tensor, dict ``"out"`` or tuple with masks first).
        region: Region to break: a name (``"left"``, ...) or a mask, see :mod:`regionattack.regions`;
            None: the whole image (no outside to keep).
        eps: L-inf radius in image units [0, 1]. alpha: Step size (default ``eps / 4``).
            steps: Number of steps.
        random_start: Start from a uniform random point.
        objective: ``"segmentation"`` (default), ``"channels"`` or ``"both"``.
        channels: Channels to attack through (ids, (N, k) ids, bool mask or a
            :class:`~regionattack.ChannelRanking` made on this model and latent layer; to reuse
            another model's channels on purpose, pass ``ranking.top(k)``); ranked on each batch
            when None.
        k: Number of channels (default: 5% of the latent's channels).
        layer: Latent layer name (default: the architecture's).
        perturb_region: Where the perturbation may be non-zero (default: everywhere).
        outside_weight: Weight of the term that preserves the prediction outside the region.
        done_weight: Weight of inside pixels already broken ("segmentation" objective, untargeted).
        flipped_weight: Extra weight of outside pixels whose prediction changed ("segmentation").
        outside_margin: Lead in logits the clean class must keep outside (the hinge above);
            None (default): the cross-entropy of the clean prediction.
        max_outside: An outside budget instead of a fixed weight: the largest fraction of the
            valid outside pixels allowed to change (``0.01``), or ``"noise"``: as many as uniform
            noise of radius ``eps`` changes on that image. The outside term's weight then starts
            at ``outside_weight`` and is raised, per image, after each iterate over budget and
            lowered after each within it; each image gets its iterate (the last one included,
            and the last perturbation scaled by 0.7, 0.5, 0.35 and 0.25: :data:`SHRINK`) that
            breaks the most inside pixels within budget, or, when none keeps it, the one that
            exceeds it least, and ``budget_met`` (N,) tells which (see
            :mod:`regionattack.attacks.budget`). None (default): the fixed weight.
        seed: Seed for the random start (an int or None).
        optimizer: ``"pgd-decay"`` (default: the step decays from ``2 * alpha`` to
            ``2 * alpha / steps``), ``"pgd"`` or ``"apgd"`` (see
            :class:`~regionattack.SegmentationAttack`); the decaying step against fixed steps is
            measured in docs/results/camvid.md (``benchmarks/region_strength.py``).

    Raises:
        TypeError: If ``channels`` is not a selection (see
            :func:`~regionattack.ablation.check_channels`) or a setting has the wrong type.
        ValueError: When built, for an unknown objective or region name, an empty channel
            selection, a ranking made on another layer or model (see
            :func:`~regionattack.ranking.check_ranking_matches`), or a setting out of range
            (``outside_margin`` negative, for one).

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> atk = RegionAttack(net, "left", steps=2, seed=0)
        >>> x = torch.rand(1, 3, 64, 64)
        >>> adv = atk(x)
        >>> bool((adv - x).abs().max() <= 8 / 255 + 1e-6), adv.shape
        (True, torch.Size([1, 3, 64, 64]))
    """

    name_options = {"optimizer": OPTIMIZERS, "objective": OBJECTIVES}

    def __init__(
        self,
        model: nn.Module,
        region: RegionLike | None,
        *,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        random_start: bool = True,
        objective: str = "segmentation",
        channels: ChannelsLike | ChannelRanking | None = None,
        k: int | None = None,
        layer: str | None = None,
        perturb_region: RegionLike | None = None,
        outside_weight: float = 1.0,
        done_weight: float = 0.1,
        flipped_weight: float = 4.0,
        outside_margin: float | None = None,
        max_outside: BudgetLike = None,
        seed: int | None = None,
        optimizer: str = "pgd-decay",
    ):
        super().__init__(
            type(self).__name__,
            model,
            eps=eps,
            alpha=alpha,
            steps=steps,
            random_start=random_start,
            seed=seed,
            optimizer=optimizer,
        )
        self.check_region_names(region, perturb_region)
        self.region = region
        self.objective_name = check_choice(objective, "objective", OBJECTIVES)
        self.captures_latent = objective in ("channels", "both")
        self.layer = (
            None if objective == "segmentation" and layer is None else find_layer(model, layer)[0]
        )
        if objective == "segmentation" and (channels is not None or k is not None):
            raise ValueError(
                "channels and k are used only by the 'channels' and 'both' objectives; "
                f"got objective={objective!r}"
            )
        if k is not None and isinstance(channels, ChannelRanking):
            check_k(k, channels.num_channels)
        elif k is not None and channels is not None:
            raise ValueError("k is only used with a ChannelRanking or ranking on the batch")
        if isinstance(channels, ChannelRanking):
            check_ranking_matches(channels, model, self.layer)
        elif channels is not None:
            check_channels(channels)
        self.channels = channels
        self.k = k
        self.perturb_region = perturb_region
        self.outside_weight = check_nonnegative_float(outside_weight, "outside_weight")
        self.done_weight = check_nonnegative_float(done_weight, "done_weight")
        self.flipped_weight = check_nonnegative_float(flipped_weight, "flipped_weight")
        self.outside_margin = (
            None
            if outside_margin is None
            else check_nonnegative_float(outside_margin, "outside_margin")
        )
        self.max_outside = check_budget(max_outside)
        if self.max_outside is not None and objective == "channels":
            raise ValueError(
                "max_outside needs the prediction, which the 'channels' objective never reads; "
                "use objective='segmentation' or 'both'"
            )
        self.budget_met: torch.Tensor | None = None

    def select_channels(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        inside: torch.Tensor,
        valid: torch.Tensor,
        num_channels: int,
        clean_layer_output: object | None = None,
    ) -> torch.Tensor:
        """Return a (N or 1, K) bool mask of the channels to attack through.

        ``clean_layer_output`` (the latent layer's output on ``images``) spares the ranking on the
        batch its own pass through the encoder: only the layers after the latent run again.
        """
        network = self.network()
        if isinstance(self.channels, ChannelRanking):
            if self.channels.num_channels != num_channels:
                raise ValueError(
                    f"the ranking has {self.channels.num_channels} channels but the latent has "
                    f"{num_channels}"
                )
            return channel_mask(self.channels.top(self.k or default_k(num_channels)), num_channels)
        if self.channels is not None:
            return channel_mask(self.channels, num_channels, images.shape[0])
        k = check_k(self.k, num_channels) if self.k is not None else default_k(num_channels)
        weights = mean_weights(torch.stack([inside, ~inside]), valid)
        replay = contextlib.nullcontext()
        if clean_layer_output is not None:
            replay = replay_layer(find_layer(network, self.layer)[1], clean_layer_output)
        with replay:
            effects = gradient_effects(network, images, weights, targets=targets, layer=self.layer)
        scores = region_scores(effects[:, 0], effects[:, 1])
        return channel_mask(scores.topk(k, dim=1).indices, num_channels)

    def perturb(self, problem: Problem) -> torch.Tensor:
        """Ascend the chosen objective (see the class); labels 255 are never attacked."""
        images, labels, clean = problem.images, problem.labels, problem.clean
        if self.objective_name in ("segmentation", "both"):
            targets = self.attack_targets(images, labels, clean)
        else:  # the channel term needs no target map, only targets to rank channels against
            targets = clean if labels is None or self.targeted else labels
        return self.break_region(problem, targets, targeted=self.targeted)

    def break_region(
        self, problem: Problem, targets: torch.Tensor, *, targeted: bool
    ) -> torch.Tensor:
        """Ascend the objective for ``problem.inside`` against the (N, H, W) ``targets``.

        ``targeted``: reach ``targets`` inside (else move away from them). With ``max_outside``,
        the outside budget chooses each image's iterate (and ``budget_met`` is set).
        """
        images, labels, clean, inside = (
            problem.images,
            problem.labels,
            problem.clean,
            problem.inside,
        )
        use_segmentation = self.objective_name in ("segmentation", "both")
        use_channels = self.objective_name in ("channels", "both")
        network = self.network()
        n = images.shape[0]
        valid = (
            torch.ones_like(clean, dtype=torch.bool) if labels is None else labels != IGNORE_INDEX
        )
        inside_w, outside_w = mean_weights(torch.stack([inside, ~inside]), valid)
        sign = -1.0 if targeted else 1.0
        budget = None
        if self.max_outside is not None:
            budget = self.outside_budget(problem, targets, valid, targeted)
        if use_channels:
            layer_output, problem.latent = problem.latent, None  # the features are large
            clean_latent = select_latent(layer_output)
            selected = self.select_channels(
                images,
                clean if targeted else targets,
                inside,
                valid,
                clean_latent.shape[1],
                layer_output,
            )
            del layer_output
            ablated = ablate(clean_latent, selected)
            energy = channel_distance(
                clean_latent, ablated, selected, torch.ones(n, device=images.device)
            )
            scale = energy.clamp_min(1e-12)

        scores: dict[str, torch.Tensor] = {}

        def objective(adv: torch.Tensor, step: int) -> torch.Tensor:
            del step
            loss = torch.zeros(n, device=adv.device)
            if use_segmentation:
                latent: dict[str, torch.Tensor] = {}
                capture = edit_latent(network, lambda z: latent.update(z=z), self.layer, once=True)
                with capture if use_channels else contextlib.nullcontext():
                    logits = model_logits(network(adv), adv.shape[-2:])
                predicted = predicted_classes(logits.detach())
                if budget is not None:
                    budget.observe(adv, predicted)
                if self.optimizer == "apgd":  # the best iterate is chosen by success
                    scores["last"] = success_score(
                        predicted, targets, clean, inside, valid, targeted=targeted
                    )
                # one log-softmax serves both terms; their weights never overlap (inside/outside)
                keep_ce = self.outside_weight and self.outside_margin is None
                maps = (targets, clean) if keep_ce else (targets,)
                inside_ce, *outside_ce = pixel_cross_entropies(logits, *maps)
                # untargeted only: a targeted pixel that reached its target must be held there
                done_weight = 1.0 if targeted else self.done_weight
                inside_scale = torch.where(predicted != targets, done_weight, 1.0)
                loss = sign * weighted_sum(inside_ce, inside_w * inside_scale)
                if self.outside_weight:
                    outside_scale = 1.0 + self.flipped_weight * (predicted != clean).float()
                    kept = (
                        outside_ce[0]
                        if self.outside_margin is None
                        else margin_shortfall(logits, clean, self.outside_margin)
                    )
                    weight = self.outside_weight if budget is None else budget.weights
                    loss = loss - weight * weighted_sum(kept, outside_w * outside_scale)
            if use_channels:
                z = latent["z"] if use_segmentation else latent_of(network, adv, self.layer)
                loss = loss - channel_distance(z, ablated, torch.ones_like(selected), scale)
            return loss

        adv = self.pgd(images, objective, problem.allowed, scores)
        if budget is None:
            return adv
        with torch.no_grad():  # the last iterate is a candidate too, and shorter versions of it
            for scale in (1.0, *SHRINK):
                shrunk = images + scale * (adv - images)
                budget.observe(shrunk, predicted_classes(self.logits(shrunk)))
        adv, self.budget_met = budget.result()
        missed = int((~self.budget_met).sum())
        if missed:
            warnings.warn(
                f"{type(self).__name__}: {missed} of {n} images changed more outside pixels than "
                f"max_outside={self.max_outside!r} allows at every iterate; each got its least "
                "violating iterate (see the attack's budget_met)",
                RuntimeWarning,
                stacklevel=2,
            )
        return adv

    def outside_budget(
        self, problem: Problem, targets: torch.Tensor, valid: torch.Tensor, targeted: bool
    ) -> OutsideBudget:
        """The per-image budget of this call, from ``max_outside``."""
        outside = ~problem.inside & valid
        if self.max_outside == "noise":
            limit = noise_limit(
                self.logits, problem.images, problem.clean, outside, self.eps, problem.allowed,
                self.seed,
            )  # fmt: skip
        else:
            limit = torch.full((problem.images.shape[0],), float(self.max_outside))
        inside = problem.inside & valid

        def broken(predicted: torch.Tensor) -> torch.Tensor:
            return ((predicted == targets) if targeted else (predicted != targets)) & inside

        return OutsideBudget(
            limit, self.outside_weight, problem.images, problem.clean, outside, broken
        )
