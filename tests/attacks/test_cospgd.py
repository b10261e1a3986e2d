"""CosPGD: cross-entropy scaled by the cosine between the softmax and the one-hot target."""

import pytest
import torch

from regionattack import CosPGD
from tests.helpers import reference_pgd

EPS = 8 / 255


@pytest.fixture
def reference():
    """The cospgd package's ``functions`` (a dev extra): the reference implementation."""
    return pytest.importorskip("cospgd", reason="cospgd is in the dev extras").functions


@pytest.mark.parametrize("targeted", [False, True])
def test_whole_image_attack_is_pgd_on_the_cospgd_loss(reference, tiny_segmenter, images, targeted):
    """With region=None and no random start, each step is the one cospgd's loss would take."""
    labels = torch.randint(0, 3, (4, 16, 16), generator=torch.Generator().manual_seed(1))
    attack = CosPGD(tiny_segmenter, None, steps=3, seed=0, random_start=False)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    adv = reference_pgd(
        tiny_segmenter, images, labels, lambda lg, lb, loss, step: reference.cospgd_scale(lg, lb, loss, 3, targeted).mean(),
        steps=attack.steps, targeted=targeted,
    )  # fmt: skip
    torch.testing.assert_close(attack(images, labels), adv, atol=1e-6, rtol=0)


@pytest.mark.parametrize("targeted", [False, True])
def test_the_weight_is_the_cosine_to_the_one_hot_target_at_every_step(tiny_segmenter, targeted):
    # Pixels: confidently right, unsure, confidently wrong, ignored; target class 0 everywhere.
    logits = torch.tensor([[4.0, 0.5, -2.0, 1.0], [0.0, 0.0, 2.0, 0.0], [0.0, 0.5, 0.0, 0.0]])
    logits = logits.reshape(1, 3, 1, 4).requires_grad_(True)
    targets = torch.tensor([[[0, 0, 0, 255]]])
    attack = CosPGD(tiny_segmenter, steps=5)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    probs = logits.detach().softmax(1)
    cosine = probs[:, 0] / probs.norm(dim=1)
    expected = (1 - cosine if targeted else cosine) * torch.tensor([1.0, 1.0, 1.0, 0.0])
    for step in (0, 4):  # the same weights at every step
        weights = attack.pixel_scale(logits, targets, step)
        torch.testing.assert_close(weights, expected)
        assert not weights.requires_grad
    right, unsure, wrong = weights[0, 0, :3].tolist()
    if targeted:  # reward moving towards the target: pixels far from it weigh most
        assert wrong > unsure > right
    else:  # pixels still confidently right weigh most
        assert right > unsure > wrong > 0


def test_pixels_already_wrong_still_pull_on_the_first_step(tiny_segmenter, images):
    with torch.no_grad():
        wrong = (tiny_segmenter(images).argmax(1) + 1) % 3
    adv = CosPGD(tiny_segmenter, steps=1, random_start=False)(images, wrong)
    assert not torch.equal(adv, images)  # a softmax is never exactly 0: no weight vanishes
