"""UniformNoise: the reference perturbation of the same radius."""

import pytest
import torch

from regionattack import UniformNoise
from tests.helpers import assert_untouched, snapshot

EPS = 8 / 255


def test_noise_stays_in_the_ball_and_the_image_box_and_repeats(tiny_segmenter, images):
    model = tiny_segmenter.train()
    before = snapshot(model)
    noisy = UniformNoise(model, eps=EPS, seed=3)(images)
    assert_untouched(model, before)
    delta = noisy - images
    assert float(delta.abs().max()) <= EPS + 1e-6
    assert float(noisy.min()) >= 0 and float(noisy.max()) <= 1
    assert float(delta.abs().mean()) > EPS / 4  # uniform in [-eps, eps]: mean |delta| ~ eps / 2
    assert torch.equal(UniformNoise(model, eps=EPS, seed=3)(images), noisy)
    assert not torch.equal(UniformNoise(model, eps=EPS, seed=4)(images), noisy)


def test_noise_is_the_random_start_of_a_seeded_attack(tiny_segmenter, images):
    from regionattack import RegionPGD

    noise = UniformNoise(tiny_segmenter, eps=EPS, seed=0)(images)
    start = RegionPGD(tiny_segmenter, "left", eps=EPS, alpha=0.0, steps=1, seed=0)(images)
    assert torch.allclose(noise, start)


def test_zero_radius_and_perturb_region(tiny_segmenter, images):
    assert torch.equal(UniformNoise(tiny_segmenter, eps=0.0, seed=0)(images), images)
    noisy = UniformNoise(tiny_segmenter, eps=EPS, perturb_region="left", seed=0)(images)
    assert torch.equal(noisy[..., 8:], images[..., 8:])
    assert not torch.equal(noisy[..., :8], images[..., :8])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eps": 8}, ValueError, "did you mean 8/255"),
        ({"seed": "a"}, TypeError, "seed"),
        ({"perturb_region": "middle"}, ValueError, "region"),
    ],
)
def test_bad_settings_are_refused(tiny_segmenter, kwargs, error, match):
    with pytest.raises(error, match=match):
        UniformNoise(tiny_segmenter, **kwargs)
