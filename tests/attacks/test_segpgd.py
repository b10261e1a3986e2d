"""SegPGD: cross-entropy weighted between pixels still right and pixels already wrong, by step."""

import pytest
import torch

from regionattack import RegionPGD, SegPGD
from tests.helpers import reference_pgd

EPS = 8 / 255


@pytest.fixture
def reference():
    """The cospgd package's ``functions`` (a dev extra): the reference implementation."""
    return pytest.importorskip("cospgd", reason="cospgd is in the dev extras").functions


def predict(model, images):
    with torch.no_grad():
        return model(images).argmax(1)


@pytest.mark.parametrize("targeted", [False, True])
def test_whole_image_attack_is_pgd_on_the_cospgd_segpgd_loss(
    reference, tiny_segmenter, images, targeted
):
    """With region=None and no random start, each step is the one cospgd's loss would take."""
    labels = torch.randint(0, 3, (4, 16, 16), generator=torch.Generator().manual_seed(1))
    attack = SegPGD(tiny_segmenter, None, steps=3, seed=0, random_start=False)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    adv = reference_pgd(
        tiny_segmenter, images, labels, lambda lg, lb, loss, step: reference.segpgd_scale(lg, lb, loss, step, 3, targeted),
        steps=attack.steps, targeted=targeted,
    )  # fmt: skip
    torch.testing.assert_close(attack(images, labels), adv, atol=1e-6, rtol=0)


@pytest.mark.parametrize("targeted", [False, True])
def test_the_weight_moves_from_the_right_pixels_to_all_pixels_step_by_step(
    tiny_segmenter, targeted
):
    logits = torch.eye(3)[[0, 1, 2, 0]].T.reshape(1, 3, 1, 4).requires_grad_(True)
    targets = torch.tensor([[[0, 2, 2, 255]]])  # right, wrong, right, ignored
    attack = SegPGD(tiny_segmenter, steps=4)
    if targeted:  # a pixel at its target is "right": the two weights swap
        attack.set_mode_targeted_by_label(quiet=True)
    for step, lam in enumerate([0.0, 0.125, 0.25, 0.375]):  # lambda_t = t / (2T)
        right, wrong = (lam, 1 - lam) if targeted else (1 - lam, lam)
        weights = attack.pixel_scale(logits, targets, step)
        assert weights.tolist() == [[[right, wrong, right, 0.0]]]
        assert not weights.requires_grad


def test_the_first_step_ignores_the_pixels_already_wrong(tiny_segmenter, images):
    clean = predict(tiny_segmenter, images)
    wrong = (clean + 1) % 3  # every pixel already misclassified
    one_step = SegPGD(tiny_segmenter, steps=1, random_start=False)
    assert torch.equal(one_step(images, wrong), images)  # lambda_0 = 0: no pixel pulls
    two_steps = SegPGD(tiny_segmenter, steps=2, random_start=False)
    assert not torch.equal(two_steps(images, wrong), images)  # lambda_1 = 1/4
    plain = RegionPGD(tiny_segmenter, None, steps=1, random_start=False)
    assert not torch.equal(plain(images, wrong), images)  # plain cross-entropy: every pixel pulls
    one_step.set_mode_targeted_by_label(quiet=True)
    assert torch.equal(one_step(images, clean), images)  # every pixel already at its target
