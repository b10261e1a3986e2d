"""RegionAttack: perturbing part of the image, the channel objectives, the outside margin, rankings."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from regionattack import (
    PositionChannelAttack,
    RegionAttack,
    rank_channels,
    regions,
    with_normalization,
)
from regionattack.attacks.objectives import project
from regionattack.models import TinySegmenter
from regionattack.ranking import mean_weights

EPS = 8 / 255


def test_perturb_region_confines_the_change(tiny_segmenter, images):
    attack = RegionAttack(tiny_segmenter, "left", perturb_region="right", steps=3, seed=0)
    adv = attack(images)
    delta = (adv - images).abs()
    assert delta[..., :8].max() == 0
    assert delta[..., 8:].max() > 0


def test_given_channels_and_ranking_are_used(tiny_segmenter, images):
    ranking = rank_channels(tiny_segmenter, images, region="left")
    from_ranking = RegionAttack(
        tiny_segmenter, "left", objective="channels", channels=ranking, k=2, seed=0
    )(images)
    from_ids = RegionAttack(
        tiny_segmenter, "left", objective="channels", channels=ranking.top(2), seed=0
    )(images)
    assert torch.equal(from_ranking, from_ids)


def test_targeted_channels_objective_needs_no_target_map(tiny_segmenter, images):
    attack = RegionAttack(tiny_segmenter, "left", objective="channels", k=2, steps=1, seed=0)
    attack.set_mode_targeted_by_label(quiet=True)
    assert attack(images).shape == images.shape


def reference_region_attack(model, images, labels, *, eps, alpha, steps, seed, margin=None):
    """RegionAttack's defaults written out plainly: argmax, two F.cross_entropy calls (or, with
    ``margin``, the hinge on the clean class's lead over the runner-up outside), the step decaying
    linearly from 2 * alpha."""
    done_weight, flipped_weight, outside_weight = 0.1, 4.0, 1.0
    with torch.no_grad():
        clean = model(images).argmax(dim=1)
    inside = regions.named("left", tuple(images.shape[-2:]))[None]
    valid = labels != 255
    inside_w, outside_w = mean_weights(torch.stack([inside, ~inside]), valid)
    delta = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed))
    delta = project(images, (2 * delta - 1) * eps, eps)
    for step in range(steps):
        adv = (images + delta).requires_grad_(True)
        logits = model(adv)
        predicted = logits.detach().argmax(dim=1)
        inside_ce = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
        outside_ce = F.cross_entropy(logits, clean, ignore_index=255, reduction="none")
        if margin is not None:
            top2 = logits.topk(2, dim=1).values
            own = logits.gather(1, clean[:, None])[:, 0]
            rival = torch.where(own == top2[:, 0], top2[:, 1], top2[:, 0])
            outside_ce = (margin - (own - rival)).clamp_min(0)
        inside_scale = torch.where(predicted != labels, done_weight, 1.0)
        outside_scale = 1.0 + flipped_weight * (predicted != clean).float()
        loss = (inside_ce * (inside_w * inside_scale)).flatten(1).sum(dim=1)
        loss = loss - outside_weight * (outside_ce * (outside_w * outside_scale)).flatten(1).sum(1)
        (grad,) = torch.autograd.grad(loss.sum(), adv)
        delta = project(images, delta + 2 * alpha * (1 - step / steps) * grad.sign(), eps)
    return (images + delta).detach()


def test_region_attack_matches_a_plain_reference_bit_for_bit(tiny_segmenter, images, generator):
    # RegionAttack shares one log-softmax between its two terms and takes max().indices for the
    # argmax (benchmarks/perf.py); the adversarial images must not change by a single bit.
    labels = torch.randint(0, 3, (4, 16, 16), generator=generator)
    labels[:, :3] = 255
    attack = RegionAttack(tiny_segmenter, "left", eps=EPS, alpha=2 / 255, steps=4, seed=0)
    expected = reference_region_attack(
        tiny_segmenter, images, labels, eps=EPS, alpha=2 / 255, steps=4, seed=0
    )
    assert torch.equal(attack(images, labels), expected)


def test_outside_margin_matches_a_plain_reference(tiny_segmenter, images, generator):
    labels = torch.randint(0, 3, (4, 16, 16), generator=generator)
    labels[:, :3] = 255
    attack = RegionAttack(tiny_segmenter, "left", eps=EPS, steps=4, seed=0, outside_margin=0.5)
    expected = reference_region_attack(
        tiny_segmenter, images, labels, eps=EPS, alpha=2 / 255, steps=4, seed=0, margin=0.5
    )
    assert torch.equal(attack(images, labels), expected)
    default = RegionAttack(tiny_segmenter, "left", eps=EPS, steps=4, seed=0)
    assert not torch.equal(default(images, labels), expected)  # the hinge is what was used


@pytest.mark.parametrize(("value", "error"), [(-0.1, ValueError), ("0.1", TypeError)])
def test_outside_margin_is_checked(tiny_segmenter, value, error):
    with pytest.raises(error, match="outside_margin"):
        RegionAttack(tiny_segmenter, "left", outside_margin=value)


@pytest.mark.parametrize("objective", ["both", "channels"])
def test_ranking_on_the_batch_reuses_the_clean_pass(tiny_segmenter, images, objective):
    """The channels ranked on the batch come from the clean forward pass: the encoder runs once
    for the clean prediction and once per step, and the result is that of the plain ranking."""
    from regionattack.ranking import gradient_effects, region_scores

    calls = []
    first = tiny_segmenter.encoder[0]  # runs only when the encoder computes (not when replayed)
    hook = first.register_forward_hook(lambda *_: calls.append(1))
    try:
        adv = RegionAttack(tiny_segmenter, "left", objective=objective, k=2, steps=3, seed=0)(
            images
        )
    finally:
        hook.remove()
    assert len(calls) == 1 + 3  # was 1 + 1 (clean latent) + 1 (ranking) + 3
    with torch.no_grad():
        clean = tiny_segmenter(images).argmax(dim=1)
    inside = regions.named("left", (16, 16))[None].expand(4, -1, -1)
    weights = mean_weights(torch.stack([inside, ~inside]), torch.ones_like(clean, dtype=torch.bool))
    effects = gradient_effects(tiny_segmenter, images, weights, targets=clean)
    chosen = region_scores(effects[:, 0], effects[:, 1]).topk(2, dim=1).indices
    given = RegionAttack(
        tiny_segmenter, "left", objective=objective, channels=chosen, steps=3, seed=0
    )
    assert torch.equal(adv, given(images))


# ---------------------------------------------------------------- rankings belong to a model/layer
def test_a_ranking_of_another_model_or_layer_is_refused(tiny_segmenter, images):
    ranking = rank_channels(tiny_segmenter, images, region="left")
    torch.manual_seed(1)
    other = TinySegmenter(num_classes=3, latent_channels=8).eval()
    for make in (
        lambda model, r: PositionChannelAttack(model, r),
        lambda model, r: RegionAttack(model, "left", objective="channels", channels=r),
        lambda model, r: RegionAttack(model, "left", objective="both", channels=r),
    ):
        with pytest.raises(ValueError, match=r"made on another model.*ranking\.top\(k\)"):
            make(other, ranking)
        make(other, ranking.top(2))  # reusing the channels on purpose
        with pytest.raises(
            ValueError, match=r"layer 'decoder.0' but the attack's latent layer is 'encoder'"
        ):
            make(tiny_segmenter, dataclasses.replace(ranking, layer="decoder.0"))
        make(tiny_segmenter, ranking)
        make(other, dataclasses.replace(ranking, model_digest=None))  # no digest: no check
        wrapped = with_normalization(tiny_segmenter, (0.5,) * 3, (0.2,) * 3)
        make(wrapped, ranking)  # the wrapper adds no weights: the same network
        make(tiny_segmenter, rank_channels(wrapped, images, method="flip"))


def test_a_ranking_is_digested_once_per_attack(tiny_segmenter, images, monkeypatch):
    import regionattack.ranking as ranking_module

    ranking = rank_channels(tiny_segmenter, images, region="left")
    calls = []
    real = ranking_module.state_digest
    monkeypatch.setattr(ranking_module, "state_digest", lambda m: calls.append(1) or real(m))
    attack = RegionAttack(
        tiny_segmenter, "left", objective="channels", channels=ranking, k=2, steps=3
    )
    attack(images)
    attack(images)
    assert len(calls) == 1
