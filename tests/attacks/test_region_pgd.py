"""RegionPGD: the plain baseline, the mean cross-entropy over the region's pixels and nothing else."""

import pytest
import torch
import torch.nn.functional as F

from regionattack import RegionAttack, RegionPGD
from regionattack.attacks.objectives import project

EPS = 8 / 255


def reference_region_pgd(model, images, labels, inside, *, steps, seed, targeted=False):
    """RegionPGD written out plainly: from the seeded uniform start, fixed signed steps of eps / 4
    on the mean cross-entropy over the region's valid pixels (descended when targeted)."""
    alpha = EPS / 4
    selected = (inside & (labels != 255)).float()
    weights = selected / selected.sum(dim=(-2, -1), keepdim=True).clamp_min(1)
    delta = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed))
    delta = project(images, (2 * delta - 1) * EPS, EPS)
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        adv = (images + delta).requires_grad_(True)
        loss = F.cross_entropy(model(adv), labels, ignore_index=255, reduction="none")
        loss = sign * (loss * weights).flatten(1).sum(dim=1)
        (grad,) = torch.autograd.grad(loss.sum(), adv)
        delta = project(images, delta + alpha * grad.sign(), EPS)
    return (images + delta).detach()


@pytest.fixture
def labels(generator):
    labels = torch.randint(0, 3, (4, 16, 16), generator=generator)
    labels[:, :3] = 255
    return labels


@pytest.mark.parametrize("region", ["left", None])
@pytest.mark.parametrize("targeted", [False, True])
def test_region_pgd_matches_a_plain_reference_bit_for_bit(
    tiny_segmenter, images, labels, region, targeted
):
    attack = RegionPGD(tiny_segmenter, region, eps=EPS, steps=4, seed=2)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    inside = torch.ones(16, 16, dtype=torch.bool)
    if region == "left":
        inside[:, 8:] = False
    expected = reference_region_pgd(
        tiny_segmenter, images, labels, inside, steps=4, seed=2, targeted=targeted
    )
    assert torch.equal(attack(images, labels), expected)
    if not targeted:  # RegionAttack's defaults also weigh broken pixels less and keep the outside
        assert not torch.equal(
            RegionAttack(tiny_segmenter, region, steps=4, seed=2)(images, labels), expected
        )


def test_the_labels_outside_the_region_play_no_part(tiny_segmenter, images, labels, generator):
    other = labels.clone()
    other[..., 8:] = torch.randint(0, 3, (4, 16, 8), generator=generator)
    attack = RegionPGD(tiny_segmenter, "left", eps=EPS, steps=3, seed=0)
    assert torch.equal(attack(images, labels), attack(images, other))
    inside = labels.clone()
    inside[..., :8] = torch.randint(0, 3, (4, 16, 8), generator=generator)
    assert not torch.equal(attack(images, labels), attack(images, inside))


def test_every_region_pixel_pulls_whether_or_not_it_is_already_wrong(tiny_segmenter, images):
    with torch.no_grad():
        wrong = (tiny_segmenter(images).argmax(1) + 1) % 3  # every pixel already misclassified
    settings = {"steps": 1, "random_start": False}
    assert not torch.equal(RegionPGD(tiny_segmenter, "left", **settings)(images, wrong), images)
    broken_ignored = RegionAttack(
        tiny_segmenter, "left", outside_weight=0.0, done_weight=0.0, optimizer="pgd", **settings
    )
    assert torch.equal(broken_ignored(images, wrong), images)  # what RegionPGD does not do


def test_it_is_named_region_pgd():
    from regionattack.models import TinySegmenter

    assert repr(RegionPGD(TinySegmenter(), "top", steps=1)).startswith("RegionPGD(")
