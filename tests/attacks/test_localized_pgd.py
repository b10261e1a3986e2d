"""LocalizedPGD: one step is the sign of the summed, per-patch L2-normalised gradients."""

import pytest
import torch
import torch.nn.functional as F

import regionattack as ra


def _reference_step(model, images, targets, region, patches, alpha):
    """The paper's step written out: one gradient per patch, each of unit norm, summed, signed."""
    height, width = images.shape[-2:]
    total = torch.zeros_like(images)
    rows, columns = patches
    for i in range(rows):
        for j in range(columns):
            cell = torch.zeros(height, width, dtype=torch.bool)
            cell[i * height // rows : (i + 1) * height // rows,
                 j * width // columns : (j + 1) * width // columns] = True  # fmt: skip
            counted = cell & region
            if not counted.any():
                continue
            x = images.clone().requires_grad_(True)
            losses = F.cross_entropy(model(x), targets, reduction="none")
            loss = sum(losses[k][counted].mean() for k in range(len(images)))
            (grad,) = torch.autograd.grad(loss, x)
            grad = grad * region
            total += grad / grad.flatten(1).norm(dim=1)[:, None, None, None]
    return (images + alpha * total.sign() * region).clamp(0, 1)


@pytest.mark.parametrize("patches", [(1, 1), (2, 2), (3, 2)])
def test_one_step_matches_the_written_out_algorithm(patches, tiny_segmenter, images):
    targets = tiny_segmenter(images).argmax(1)
    region = ra.regions.as_mask("left", (16, 16))[0]
    attack = ra.LocalizedPGD(tiny_segmenter, "left", eps=8 / 255, steps=1, patches=patches)
    expected = _reference_step(tiny_segmenter, images, targets, region, patches, attack.alpha)
    torch.testing.assert_close(attack(images), expected)


def test_the_perturbation_stays_in_the_region_or_where_it_is_allowed(tiny_segmenter, images):
    adv = ra.LocalizedPGD(tiny_segmenter, "left", steps=3)(images)
    assert (adv - images)[..., 8:].abs().max() == 0 and (adv - images)[..., :8].abs().max() > 0
    adv = ra.LocalizedPGD(tiny_segmenter, "left", steps=3, perturb_region="right")(images)
    assert (adv - images)[..., :8].abs().max() == 0


@pytest.mark.parametrize("patches", [(0, 2), (2,), "2x2"])
def test_bad_patch_grids_are_refused(patches, tiny_segmenter):
    with pytest.raises((ValueError, TypeError), match="patch"):
        ra.LocalizedPGD(tiny_segmenter, "left", patches=patches)
