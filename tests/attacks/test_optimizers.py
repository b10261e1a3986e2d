"""The optimizers: fixed and decaying PGD steps, APGD, all projected onto the ball and the box."""

import pytest
import torch

from regionattack.attacks import RegionAttack, optimizers
from regionattack.attacks.optimizers import OPTIMIZERS, ascend, step_size

EPS = 8 / 255


def test_pgd_decay_steps_shrink_linearly_from_twice_alpha():
    assert [round(step_size("pgd-decay", 0.01, t, 4), 6) for t in range(4)] == [
        0.02,
        0.015,
        0.01,
        0.005,
    ]
    assert step_size("pgd", 0.01, 3, 4) == 0.01


def test_the_loop_takes_its_steps_from_step_size(tiny_segmenter, images, monkeypatch):
    attack = RegionAttack(tiny_segmenter, "left", steps=4, seed=0, optimizer="pgd-decay")
    monkeypatch.setattr(optimizers, "step_size", lambda *args: 0.0)
    assert torch.equal(attack(images), attack.initial_delta(images, EPS) + images)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_stays_in_the_ball_the_box_and_the_allowed_pixels(optimizer):
    images = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    allowed = torch.zeros(1, 6, 6, dtype=torch.bool)
    allowed[..., :3] = True

    def objective(x, step):
        return (x - 0.5).abs().flatten(1).sum(1)  # pushes every pixel out of [0, 1]

    adv = ascend(
        images, torch.zeros_like(images), objective, optimizer=optimizer, eps=0.1, alpha=0.05,
        steps=5, allowed=allowed,
    )  # fmt: skip
    delta = adv - images
    assert float(delta.abs().max()) <= 0.1 + 1e-6 and delta.abs().max() > 0
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert delta[..., 3:].abs().max() == 0
