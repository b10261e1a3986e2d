"""PGD: torchattacks' algorithm on the whole image, with segmentation labels and label 255."""

import pytest
import torch
import torchattacks

from regionattack import PGD

EPS = 8 / 255


@pytest.fixture
def labels(generator):
    return torch.randint(0, 3, (4, 16, 16), generator=generator)


def torchattacks_pgd(model, images, labels, *, seed, targeted=False, **settings):
    """``torchattacks.PGD`` from torch's global generator seeded with ``seed`` (state restored)."""
    attack = torchattacks.PGD(model, eps=EPS, alpha=2 / 255, steps=3, **settings)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return attack(images, labels)


@pytest.mark.parametrize("random_start", [True, False])
@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_takes_the_steps_of_torchattacks_pgd(
    tiny_segmenter, images, labels, random_start, targeted
):
    attack = PGD(tiny_segmenter, eps=EPS, alpha=2 / 255, steps=3, random_start=random_start, seed=5)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    expected = torchattacks_pgd(
        tiny_segmenter, images, labels, seed=5, targeted=targeted, random_start=random_start
    )
    adv = attack(images, labels)
    assert torch.equal(adv, expected)
    assert not torch.equal(adv, images)


def test_without_a_seed_the_start_is_drawn_from_torchs_generator(tiny_segmenter, images, labels):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        seeded = torch.get_rng_state()
        unseeded = PGD(tiny_segmenter, eps=EPS, steps=2)(images, labels)
        assert not torch.equal(torch.get_rng_state(), seeded)  # the start was drawn from it
    assert torch.equal(unseeded, PGD(tiny_segmenter, eps=EPS, steps=2, seed=11)(images, labels))
    assert not torch.equal(unseeded, PGD(tiny_segmenter, eps=EPS, steps=2, seed=12)(images, labels))


def test_label_255_is_attacked_away_from_the_clean_prediction(tiny_segmenter, images, labels):
    with torch.no_grad():
        clean = tiny_segmenter(images).argmax(1)
    ignored = labels.clone()
    ignored[:, :5] = 255
    attack = PGD(tiny_segmenter, eps=EPS, steps=3, seed=0)
    adv = attack(images, ignored)
    assert torch.equal(adv, attack(images, torch.where(ignored == 255, clean, labels)))
    other = torch.where(ignored == 255, (clean + 1) % 3, labels)
    assert not torch.equal(adv, attack(images, other))  # the 255 pixels do steer the attack


def test_without_labels_the_clean_prediction_is_attacked(tiny_segmenter, images):
    with torch.no_grad():
        clean = tiny_segmenter(images).argmax(1)
    attack = PGD(tiny_segmenter, eps=EPS, steps=3, seed=0)
    assert torch.equal(attack(images), attack(images, clean))


def test_pgd_is_a_whole_image_attack_that_keeps_its_region_for_the_results(tiny_segmenter):
    assert PGD.whole_image
    attack = PGD(tiny_segmenter, "left", eps=EPS, steps=2, seed=0)
    assert attack.region == "left"
    assert repr(attack).startswith("PGD(")
    with pytest.raises(ValueError, match="region name"):
        PGD(tiny_segmenter, "middle")
