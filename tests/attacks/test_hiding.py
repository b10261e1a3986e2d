"""Class hiding: the dynamic target, the hiding measures, HideClasses and Metzen's loss."""

import itertools

import pytest
import torch
from torch import nn

import regionattack as ra
from regionattack.metrics import hiding_measures
from regionattack.regions import nearest_outside, of_classes
from tests.helpers import assert_untouched, snapshot

EPS = 8 / 255


def _brute_force_distances(region: torch.Tensor) -> torch.Tensor:
    """Per pixel, the squared distance to the nearest pixel outside the region (inf if none)."""
    n, height, width = region.shape
    result = torch.full((n, height, width), float("inf"))
    for k, i, j in itertools.product(range(n), range(height), range(width)):
        outside = (~region[k]).nonzero().float()
        if len(outside):
            result[k, i, j] = ((outside - torch.tensor([i, j]).float()) ** 2).sum(1).min()
    return result


@pytest.mark.parametrize("seed", range(5))
def test_the_dynamic_target_is_a_nearest_neighbour_fill(seed):
    generator = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, 4, (3, 7, 9), generator=generator)
    region = torch.rand(3, 7, 9, generator=generator) < 0.6
    region[2] = True  # an image with no pixel outside the region
    target = ra.hide_target(clean, region)
    index = nearest_outside(region)
    best = _brute_force_distances(region)
    for k, i, j in itertools.product(range(3), range(7), range(9)):
        if k == 2:
            assert index[k, i, j] == -1 and target[k, i, j] == clean[k, i, j]
            continue
        row, column = divmod(int(index[k, i, j]), 9)
        assert not region[k, row, column]  # the source lies outside the region...
        assert (row - i) ** 2 + (column - j) ** 2 == best[k, i, j]  # ...at the least distance
        assert target[k, i, j] == clean[k, row, column]
    assert torch.equal(target[~region], clean[~region])  # the outside keeps its class


def test_of_classes_and_its_refusals():
    clean = torch.tensor([[[0, 8, 9, 1]]])
    assert of_classes(clean, [8, 9]).tolist() == [[[False, True, True, False]]]
    assert of_classes(clean, 8).tolist() == [[[False, True, False, False]]]
    for bad, error in (
        ([], ValueError),
        ([8, 8], ValueError),
        ([-1], ValueError),
        ([1.5], TypeError),
    ):
        with pytest.raises(error):
            of_classes(clean, bad)
    with pytest.raises(TypeError, match="integer class ids"):
        of_classes(clean.float(), 8)


def test_hiding_measures_count_hidden_matched_and_changed_pixels():
    clean = torch.tensor([[[0, 8, 8, 8, 1, 1]], [[0, 0, 1, 1, 1, 1]]])
    after = torch.tensor([[[0, 0, 9, 8, 1, 2]], [[0, 0, 1, 1, 1, 1]]])
    target = ra.hide_target(clean, of_classes(clean, 8))
    measures = hiding_measures(clean, after, 8, target=target)
    assert measures["pixels"].tolist() == [3, 0]
    assert measures["hidden"][0].item() == pytest.approx(2 / 3)  # 9 is not a hidden class
    assert measures["target_match"][0].item() == pytest.approx(1 / 3)  # only the 0 is a target
    assert measures["changed_outside"][0].item() == pytest.approx(1 / 3)
    assert torch.isnan(measures["hidden"][1]) and measures["changed_outside"][1] == 0
    valid = torch.ones_like(clean, dtype=torch.bool)
    valid[0, 0, 5] = False  # the changed outside pixel is not counted
    assert hiding_measures(clean, after, 8, valid=valid)["changed_outside"][0] == 0


class PixelModel(nn.Module):
    """Per-pixel logits ``scale * (x_r, x_g, x_b)``: the class is the brightest channel.

    Nothing couples two pixels, so hiding one pixel cannot change another.
    """

    def __init__(self, scale: float = 20.0):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(scale * torch.eye(3)[:, :, None, None])

    def forward(self, images):
        return self.conv(images)


def planted_scene(n: int = 4) -> torch.Tensor:
    """Red background (class 0, far from any boundary), a blue blob (class 2) barely blue."""
    images = torch.zeros(n, 3, 16, 16)
    images[:, 0] = 0.7
    images[:, 1:] = 0.2
    images[:, :, 4:10, 5:11] = torch.tensor([0.5, 0.2, 0.52])[:, None, None]  # margin 0.02 < eps
    return images


def test_hide_classes_makes_an_easy_class_vanish_and_keeps_the_rest():
    model, images = PixelModel().eval(), planted_scene()
    clean = ra.latent.predicted_classes(model(images))
    assert bool((clean == 2).any())
    before = snapshot(model)
    adv = ra.HideClasses(model, classes=2, eps=EPS, steps=10, seed=0)(images)
    assert_untouched(model, before)
    after = ra.latent.predicted_classes(model(adv))
    measures = hiding_measures(clean, after, 2, target=ra.hide_target(clean, clean == 2))
    assert measures["hidden"].min() == 1.0 and measures["target_match"].min() == 1.0
    assert measures["changed_outside"].max() == 0.0
    noisy = ra.UniformNoise(model, eps=EPS, seed=0)(images)
    noise = hiding_measures(clean, ra.latent.predicted_classes(model(noisy)), 2)
    assert noise["hidden"].max() < 0.5  # noise of the same radius does not hide it


@pytest.mark.parametrize("name", ["HideClasses", "Metzen"])
def test_images_without_the_class_pass_through_unchanged(name):
    model, images = PixelModel().eval(), planted_scene(3)
    images[1] = torch.tensor([0.7, 0.2, 0.2])[:, None, None]  # no blob: nothing to hide
    adv = ra.build_attack(name, model, eps=EPS, steps=3, seed=0, region=None, classes=[2])(images)
    assert torch.equal(adv[1], images[1])
    assert not torch.equal(adv[0], images[0])
    none_present = images[1:2].repeat(2, 1, 1, 1)
    assert torch.equal(ra.build_attack(name, model, eps=EPS, steps=3, classes=2, region=None,
                                       seed=0)(none_present), none_present)  # fmt: skip


def test_metzen_hides_the_easy_class_too():
    model, images = PixelModel().eval(), planted_scene()
    clean = ra.latent.predicted_classes(model(images))
    adv = ra.Metzen(model, classes=2, eps=EPS, steps=10)(images)
    measures = hiding_measures(clean, ra.latent.predicted_classes(model(adv)), 2)
    assert measures["hidden"].min() == 1.0


def test_a_region_restricts_the_hiding_and_targets_never_use_the_hidden_class():
    model, images = PixelModel().eval(), planted_scene(2)
    clean = ra.latent.predicted_classes(model(images))
    adv = ra.HideClasses(model, classes=2, region="left", eps=EPS, steps=10, seed=0)(images)
    after = ra.latent.predicted_classes(model(adv))
    left = ra.regions.as_mask("left", (16, 16))[0]
    blob = clean == 2
    assert bool((after[blob & left] != 2).all())  # hidden in the left half
    assert bool((after[blob & ~left] == 2).all())  # kept in the right half


def test_hiding_refuses_a_targeted_mode_and_bad_classes():
    model = PixelModel().eval()
    attack = ra.HideClasses(model, classes=2, steps=1)
    attack.set_mode_targeted_by_label(quiet=True)
    with pytest.raises(ValueError, match="sets its own targets"):
        attack(planted_scene(1), torch.zeros(1, 16, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="distinct"):
        ra.HideClasses(model, classes=[2, 2])
    with pytest.raises(ValueError, match="weight must be in"):
        ra.Metzen(model, classes=2, weight=1.5)
