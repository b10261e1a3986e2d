"""The attack objectives: the margin shortfall and the shared per-pixel cross-entropies."""

import itertools

import pytest
import torch

from regionattack.attacks.objectives import margin_shortfall, pixel_cross_entropies
from regionattack.latent import predicted_classes
from regionattack.ranking import pixel_loss


def test_margin_shortfall_equals_the_definition(generator):
    logits = torch.randn(2, 4, 5, 6, generator=generator)
    targets = torch.randint(0, 4, (2, 5, 6), generator=generator)
    targets[1, 2] = 255
    hinge = margin_shortfall(logits, targets, 0.3)
    for n, i, j in itertools.product(range(2), range(5), range(6)):
        t = int(targets[n, i, j])
        if t == 255:
            assert hinge[n, i, j] == 0
            continue
        others = [float(logits[n, c, i, j]) for c in range(4) if c != t]
        lead = float(logits[n, t, i, j]) - max(others)
        assert float(hinge[n, i, j]) == pytest.approx(max(0.0, 0.3 - lead), abs=1e-6)


def test_shared_log_softmax_cross_entropies_equal_pixel_loss(generator):
    logits = torch.randn(2, 5, 6, 7, generator=generator, requires_grad=True)
    first = torch.randint(0, 5, (2, 6, 7), generator=generator)
    first[0, 0] = 255
    second = torch.randint(0, 5, (2, 6, 7), generator=generator)
    shared = pixel_cross_entropies(logits, first, second)
    apart = [pixel_loss(logits, first), pixel_loss(logits, second)]
    assert all(torch.equal(a, b) for a, b in zip(shared, apart, strict=True))
    assert torch.equal(predicted_classes(logits), logits.argmax(dim=1))
    left = torch.zeros(6, 7)
    left[:, :3] = 1.0  # disjoint weights: the gradients agree bit for bit
    grads = [
        torch.autograd.grad((ce[0] * left - ce[1] * (1 - left)).sum(), logits)[0]
        for ce in (shared, apart)
    ]
    assert torch.equal(*grads)
