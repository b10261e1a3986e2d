"""SEA: its losses, the radius schedule, region masks, ignore index, the worst case per image."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regionattack import SEA, UniformNoise
from regionattack.attacks.objectives import (
    class_balanced_weights,
    js_divergence_to_one_hot,
    success_score,
)
from regionattack.attacks.sea import SEA_LOSSES, sea_schedule
from regionattack.regions import as_mask
from tests.helpers import assert_untouched, snapshot, tiny_task

EPS = 8 / 255


def pixelwise_model() -> nn.Module:
    """A 1x1-convolution segmenter: each pixel's logits depend on that pixel's input alone."""
    model = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[4.0, -2, 0], [-2, 4, 0], [0, 0, 1]])[:, :, None, None])
        model.bias.zero_()
    return model.eval()


def broken(model, adv, targets, region="left"):
    with torch.no_grad():
        predicted = model(adv).argmax(1)
    inside = as_mask(region, tuple(targets.shape[-2:]))
    return ((predicted != targets) & inside & (targets != 255)).flatten(1).sum(1)


def test_the_radius_schedule_is_two_then_one_and_a_half_then_one_eps_over_three_three_four():
    assert sea_schedule(300, 1.0) == [(2.0, 90), (1.5, 90), (1.0, 120)]
    assert sea_schedule(10, 1.0) == [(2.0, 3), (1.5, 3), (1.0, 4)]
    assert sea_schedule(1, 1.0) == [(1.0, 1)]
    for steps in range(1, 40):
        stages = sea_schedule(steps, 1.0)
        assert sum(count for _, count in stages) == steps and stages[-1][0] == 1.0


def test_js_divergence_matches_its_definition_and_ignores_255():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 3, 4, generator=generator) * 3
    targets = torch.randint(0, 5, (2, 3, 4), generator=generator)
    p = logits.softmax(1)
    q = F.one_hot(targets, 5).permute(0, 3, 1, 2).float()
    m = (p + q) / 2
    expected = 0.5 * torch.xlogy(p, p / m).sum(1) + 0.5 * torch.xlogy(q, q / m).sum(1)
    assert torch.allclose(js_divergence_to_one_hot(logits, targets), expected, atol=1e-6)
    targets[0, 0, 0] = 255
    assert js_divergence_to_one_hot(logits, targets)[0, 0, 0] == 0


def test_class_balanced_weights_give_every_class_of_the_region_the_same_total():
    targets = torch.tensor([[[0, 0, 0, 1, 2, 2], [0, 0, 255, 1, 2, 2]]])
    inside = torch.tensor([[[True] * 4 + [False] * 2] * 2])
    weights = class_balanced_weights(targets, inside)
    assert torch.allclose(weights[0][targets[0] == 0].sum(), torch.tensor(0.5))
    assert torch.allclose(weights[0][targets[0] == 1].sum(), torch.tensor(0.5))
    assert weights[0][targets[0] == 2].sum() == 0 and weights[0, 1, 2] == 0  # outside / ignored
    assert torch.equal(
        class_balanced_weights(torch.full((1, 2, 2), 255), inside[..., :2, :2]),
        torch.zeros(1, 2, 2),
    )


@pytest.mark.parametrize("loss", SEA_LOSSES)
def test_each_loss_alone_breaks_the_region_more_than_noise_and_leaves_the_model(
    tiny_segmenter, loss
):
    images, labels = tiny_task(4, torch.Generator().manual_seed(1))
    model = tiny_segmenter.train()
    before = snapshot(model)
    attack = SEA(model, eps=16 / 255, steps=10, region="left", losses=loss, seed=0)
    adv = attack(images, labels)
    assert_untouched(model, before)
    assert float((adv - images).abs().max()) <= 16 / 255 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    noise = UniformNoise(model, eps=16 / 255, seed=0)(images)
    model.eval()
    assert broken(model, adv, labels).sum() > 2 * broken(model, noise, labels).sum()
    assert torch.equal(
        SEA(model, eps=16 / 255, steps=10, region="left", losses=loss, seed=0)(images, labels), adv
    )  # seeded: repeatable


def test_the_ensemble_returns_for_each_image_the_loss_that_breaks_most(tiny_segmenter):
    images, labels = tiny_task(6, torch.Generator().manual_seed(2))
    inside = as_mask("left", (16, 16))

    def score(adv):
        with torch.no_grad():
            predicted = tiny_segmenter(adv).argmax(1)
        return success_score(
            predicted, labels, tiny_segmenter(images).argmax(1), inside, labels != 255
        )

    single = torch.stack(
        [
            score(SEA(tiny_segmenter, steps=6, region="left", losses=loss, seed=0)(images, labels))
            for loss in SEA_LOSSES
        ]
    )
    ensemble = score(SEA(tiny_segmenter, steps=6, region="left", seed=0)(images, labels))
    assert torch.equal(ensemble, single.max(0).values)


def test_a_region_mask_confines_the_loss_and_perturb_region_the_perturbation():
    model = pixelwise_model()
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    adv = SEA(model, steps=4, region="left", random_start=False)(images)
    assert not torch.equal(adv[..., :4], images[..., :4])
    assert torch.equal(adv[..., 4:], images[..., 4:])  # no loss there: no gradient, no step
    confined = SEA(model, steps=4, perturb_region="top", seed=0)(images)
    assert torch.equal(confined[..., 4:, :], images[..., 4:, :])


def test_pixels_labelled_255_or_minus_one_are_ignored():
    model = pixelwise_model()
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = model(images).argmax(1)
    labels[..., :, :4] = 255
    with_255 = SEA(model, steps=4, random_start=False)(images, labels)
    assert torch.equal(with_255[..., :4], images[..., :4])  # ignored pixels pull nowhere
    assert not torch.equal(with_255[..., 4:], images[..., 4:])
    minus_one = labels.masked_fill(labels == 255, -1)
    assert torch.equal(SEA(model, steps=4, random_start=False)(images, minus_one), with_255)


def test_bad_settings_and_targeted_mode_are_refused(tiny_segmenter, images):
    for losses in ("ce", (), ("js", "js")):
        with pytest.raises(ValueError, match="losses"):
            SEA(tiny_segmenter, losses=losses)
    with pytest.raises(ValueError):
        SEA(tiny_segmenter, region="middle")
    with pytest.raises(ValueError):
        SEA(tiny_segmenter, eps=8)
    attack = SEA(tiny_segmenter, steps=2)
    with pytest.raises(ValueError):
        attack.set_mode_targeted_by_label()
    before = snapshot(tiny_segmenter)
    with pytest.raises(ValueError):
        attack(images * 2)  # out of [0, 1]: refused, model still untouched
    assert_untouched(tiny_segmenter, before)
