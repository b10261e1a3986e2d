"""The outside budget: met where it can be, flagged where it cannot, the best iterate kept."""

import pytest
import torch
from torch import nn

import regionattack as ra
from regionattack.attacks.budget import OutsideBudget, check_budget
from regionattack.latent import predicted_classes
from tests.attacks.test_hiding import PixelModel, planted_scene

EPS = 8 / 255


def _changed_outside(model, images, adv, region):
    clean, after = (predicted_classes(model(x)) for x in (images, adv))
    outside = ~ra.regions.as_mask(region, tuple(images.shape[-2:]))
    return ((clean != after) & outside).flatten(1).sum(1) / outside.sum()


def test_a_budget_that_can_be_kept_is_kept_and_the_inside_still_breaks():
    model, images = PixelModel().eval(), planted_scene()
    attack = ra.RegionAttack(model, "left", eps=EPS, steps=10, seed=0, max_outside=0.0)
    adv = attack(images)
    assert attack.budget_met.all()
    assert _changed_outside(model, images, adv, "left").max() == 0
    clean, after = predicted_classes(model(images)), predicted_classes(model(adv))
    assert bool((after[..., :8] != clean[..., :8]).any())  # the blob's left part is broken


class TiedOutside(nn.Module):
    """Logits ``(x_r - x_g, x_g - x_r, -1)``: where red equals green the two classes tie.

    The clean image's right half is tied (argmax takes class 0): any perturbation that lifts
    green over red flips a pixel there, and a random start flips about half of them.
    """

    def forward(self, images):
        difference = images[:, :1] - images[:, 1:2]
        return torch.cat([difference, -difference, -torch.ones_like(difference)], 1) * 10


def test_a_budget_that_cannot_be_kept_is_flagged_with_the_least_violating_iterate():
    images = torch.full((2, 3, 16, 16), 0.5)
    images[:, 0, :, :8] = 0.8  # the left half is clearly class 0
    attack = ra.RegionAttack(TiedOutside(), "left", eps=EPS, steps=1, seed=0, max_outside=0.0)
    with pytest.warns(RuntimeWarning, match="2 of 2 images changed more outside pixels"):
        adv = attack(images)
    assert not attack.budget_met.any()
    # the least violating of the two iterates (the random start and the one step) came back
    changed = _changed_outside(TiedOutside(), images, adv, "left")
    start = images + attack.initial_delta(images, EPS)
    assert bool((changed <= _changed_outside(TiedOutside(), images, start, "left")).all())
    assert bool((changed > 0).all())


def test_the_noise_budget_is_what_uniform_noise_changes_on_each_image(tiny_segmenter, images):
    attack = ra.RegionAttack(tiny_segmenter, "left", eps=EPS, steps=5, seed=0, max_outside="noise")
    adv = attack(images)
    noise = ra.UniformNoise(tiny_segmenter, eps=EPS, seed=0)(images)
    limit = _changed_outside(tiny_segmenter, images, noise, "left")
    changed = _changed_outside(tiny_segmenter, images, adv, "left")
    met = attack.budget_met
    assert bool((changed[met] <= limit[met] + 1e-6).all())


def test_the_budget_keeps_the_most_damaging_iterate_within_it():
    clean = torch.zeros(1, 1, 4, dtype=torch.long)
    outside = torch.tensor([[[False, False, True, True]]])
    budget = OutsideBudget(
        torch.tensor([0.5]), 1.0, torch.zeros(1, 1, 1, 4), clean, outside,
        lambda predicted: (predicted != 0) & ~outside,
    )  # fmt: skip
    iterates = [  # (image value, predicted): damage / changed outside
        (1.0, [1, 0, 0, 0]),  # 1 / 0.0  within
        (2.0, [1, 1, 1, 1]),  # 2 / 1.0  over
        (3.0, [1, 1, 1, 0]),  # 2 / 0.5  within, more damage: the best
        (4.0, [0, 1, 0, 0]),  # 1 / 0.0  within, less damage
    ]
    weights = []
    for value, predicted in iterates:
        budget.observe(torch.full((1, 1, 1, 4), value), torch.tensor([[predicted]]))
        weights.append(round(budget.weights.item(), 4))
    best, met = budget.result()
    assert best.flatten()[0].item() == 3.0 and met.item()
    assert weights == [0.6667, 1.3333, 0.8889, 0.5926]  # lowered within, raised over budget


@pytest.mark.parametrize(
    ("value", "error"),
    [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError), ("noisy", TypeError),
     (True, TypeError)],
)  # fmt: skip
def test_bad_budgets_are_refused(value, error):
    with pytest.raises(error, match="max_outside"):
        check_budget(value)
    with pytest.raises(error, match="max_outside"):
        ra.RegionAttack(PixelModel(), "left", max_outside=value)


def test_the_channels_objective_takes_no_budget():
    with pytest.raises(ValueError, match="max_outside needs the prediction"):
        ra.RegionAttack(PixelModel(), "left", objective="channels", layer="conv", max_outside=0.01)
