"""The contract every registered attack keeps, checked for each one from the registry's table.

As captum's hook-removal test runs every method through the same checks, this file runs every
name in :data:`regionattack.attacks.ATTACKS` (plug-ins included) through the same calls: the
radius and [0, 1] held in the caller's dtype, ``perturb_region`` and the region respected, pixels
labelled 255 accepted, a batch of one, the seed reproducible, torch's global generator and the
caller's tensors untouched, and the model left as it was after a normal and a failing call.
"""

import inspect

import pytest
import torch

from regionattack.attacks import ATTACKS, build_attack
from tests.helpers import assert_untouched, snapshot

EPS = 8 / 255
NAMES = sorted(ATTACKS)


def make(name, model, **settings):
    cls = ATTACKS[name]
    options = {cls.ranking_argument: [0, 1]} if cls.ranking_argument else {}
    if cls.classes_argument:
        options[cls.classes_argument] = [1]
    settings = {"eps": EPS, "steps": 3, "region": "left", "seed": 0, **settings}
    return build_attack(name, model, **settings, **options)


def uses_region(name) -> bool:
    cls = ATTACKS[name]
    return not cls.whole_image and cls.ranking_argument is None


@pytest.fixture
def labels(tiny_segmenter, images):
    labels = tiny_segmenter(images).argmax(1)
    labels[:, :2] = 255  # an ignored band
    return labels


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_radius_and_box_hold_in_the_callers_dtype(name, dtype, tiny_segmenter, images, labels):
    images = images.to(dtype)
    original = images.clone()
    adv = make(name, tiny_segmenter)(images, labels)
    assert adv.shape == images.shape and adv.dtype == dtype and adv.device == images.device
    assert float((adv - images).abs().max()) <= EPS + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert (adv != images).any(), "the attack changed nothing"
    assert torch.equal(images, original), "the caller's images were modified"


@pytest.mark.parametrize("name", NAMES)
def test_perturb_region_confines_the_perturbation(name, tiny_segmenter, images):
    if "perturb_region" not in inspect.signature(ATTACKS[name]).parameters:
        pytest.skip(f"{name} takes no perturb_region")
    adv = make(name, tiny_segmenter, perturb_region="right")(images)
    assert (adv - images)[..., :8].abs().max() == 0
    assert (adv - images)[..., 8:].abs().max() > 0


@pytest.mark.parametrize("name", NAMES)
def test_the_region_is_respected(name, tiny_segmenter, images, labels):
    """A region attack's result depends on its region; a whole-image attack's does not."""
    left = make(name, tiny_segmenter, region="left")(images, labels)
    right = make(name, tiny_segmenter, region="right")(images, labels)
    per_call = make(name, tiny_segmenter, region="left")(images, labels, region="right")
    assert torch.equal(per_call, right), "a per-call region must replace the attack's own"
    assert torch.equal(left, right) != uses_region(name)


@pytest.mark.parametrize("name", NAMES)
def test_labels_255_a_batch_of_one_and_no_labels(name, tiny_segmenter, images, labels):
    attack = make(name, tiny_segmenter)
    everything_ignored = torch.full_like(labels, 255)
    for args in ((images, everything_ignored), (images[:1], labels[:1]), (images,)):
        adv = attack(*args)
        assert adv.shape == args[0].shape
        assert float((adv - args[0]).abs().max()) <= EPS + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_the_seed_reproduces_and_the_global_generator_is_untouched(
    name, tiny_segmenter, images, labels
):
    state = torch.get_rng_state()
    first = make(name, tiny_segmenter, seed=3)(images, labels)
    assert torch.equal(torch.get_rng_state(), state), "the global generator was drawn from"
    assert torch.equal(first, make(name, tiny_segmenter, seed=3)(images, labels))


@pytest.mark.parametrize("name", NAMES)
def test_the_model_is_untouched_after_a_normal_and_a_failing_call(
    name, tiny_segmenter, images, labels
):
    tiny_segmenter.train()
    before = snapshot(tiny_segmenter)
    attack = make(name, tiny_segmenter)
    attack(images, labels)
    assert_untouched(tiny_segmenter, before)
    calls = {"n": 0}

    def fail_on_second(*_):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("failure midway")

    handle = tiny_segmenter.encoder.register_forward_pre_hook(fail_on_second)
    try:
        attack(images, labels)
    except RuntimeError as error:
        assert "failure midway" in str(error)
    else:
        assert calls["n"] < 2, "the failure was swallowed"  # noise never runs the model
    finally:
        handle.remove()
    assert_untouched(tiny_segmenter, before)
