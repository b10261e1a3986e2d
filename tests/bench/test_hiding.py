"""The bench's hiding measurement: which images count, how each kind of attack is run, the sums."""

import pytest
import torch

import regionattack as ra
from regionattack.bench.hiding import measure_hiding
from tests.attacks.test_hiding import PixelModel, planted_scene

EPS = 8 / 255


@pytest.fixture
def scene():
    images = planted_scene(4)
    images[3] = torch.tensor([0.7, 0.2, 0.2])[:, None, None]  # no blob: not attacked, not counted
    return images


@pytest.mark.parametrize(
    ("name", "options", "hidden"),
    [
        ("HideClasses", {"classes": 2}, 1.0),
        ("HideClasses", {"classes": 2, "max_outside": 0.0}, 1.0),
        ("Metzen", {"classes": 2}, 1.0),
        ("CosPGD", {}, 1.0),  # targeted to the dynamic target, the blob as its region
        ("UniformNoise", {}, None),
    ],
)
def test_every_kind_of_attack_is_measured_on_the_images_with_the_class(
    name, options, hidden, scene
):
    model = PixelModel().eval()
    attack = ra.build_attack(name, model, eps=EPS, steps=10, seed=0, region=None, **options)
    totals = measure_hiding(model, [scene[:2], (scene[2:], None)], 2, attack)
    summary = totals.summary()
    assert totals.images == 3 and totals.pixels == 3 * 36 and totals.outside_pixels == 3 * 220
    assert summary["changed_outside_fraction"] == 0  # the background is far from any boundary
    if hidden is None:
        assert summary["hidden_fraction"] < 0.5
    else:
        assert summary["hidden_fraction"] == hidden and summary["target_match"] == hidden
    budget = "max_outside" in options
    assert (totals.budget_images, totals.budget_met) == ((3, 3) if budget else (0, 0))
    assert totals.linf <= EPS + 1e-6


def test_a_dataset_without_the_class_counts_nothing():
    model = PixelModel().eval()
    images = torch.tensor([0.7, 0.2, 0.2])[None, :, None, None].expand(2, 3, 8, 8)
    attack = ra.HideClasses(model, classes=2, steps=1)
    summary = measure_hiding(model, [images], 2, attack).summary()
    assert summary["images"] == 0
    assert all(summary[k] != summary[k] for k in ("hidden_fraction", "seconds_per_image"))  # NaN


def test_a_region_attack_comes_back_in_its_default_mode(scene):
    model = PixelModel().eval()
    attack = ra.CosPGD(model, None, eps=EPS, steps=2)
    measure_hiding(model, [scene], 2, attack)
    assert not attack.targeted
    attack.set_mode_targeted_random(quiet=True)
    with pytest.raises(ValueError, match="targeted mode"):
        measure_hiding(model, [scene], 2, attack)
