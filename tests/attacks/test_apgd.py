"""The APGD engine: checkpoints, convergence where fixed steps oscillate, best iterate, bounds."""

import pytest
import torch

from regionattack import CosPGD, PositionChannelAttack, RegionAttack, RegionPGD, SegPGD
from regionattack.attacks.apgd import apgd, apgd_checkpoints
from tests.helpers import assert_untouched, snapshot

EPS = 8 / 255


def test_checkpoints_follow_the_paper():
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(10) == [3, 5, 6, 7, 8, 9, 10]
    assert apgd_checkpoints(1) == [1]


def test_halving_the_step_reaches_an_optimum_that_fixed_steps_jump_over():
    """Maximise -(x - t)^2 with t inside the ball: a step of 2*eps overshoots, halving converges."""
    images = torch.full((3, 1, 2, 2), 0.5)
    target = images + torch.tensor([0.3, -0.55, 0.9]).view(3, 1, 1, 1) * 0.1

    def objective(x, step):
        return -(x - target).flatten(1).pow(2).sum(1)

    adv = apgd(images, torch.zeros_like(images), objective, eps=0.1, steps=40)
    assert torch.allclose(adv, target, atol=2e-3)
    fixed = images + (0.2 * torch.sign(target - images)).clamp(-0.1, 0.1)  # one PGD step of 2*eps
    assert (objective(adv, 0) > objective(fixed, 0)).all()


def test_the_best_iterate_by_the_objective_is_returned_and_calls_are_counted():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 5, 5, generator=generator)
    weights = torch.randn(4, 3, 5, 5, generator=generator)
    seen, calls = [], {"grad": 0, "no_grad": 0}

    def objective(x, step):
        value = torch.sin(8 * (x * weights).flatten(1).sum(1))  # many local maxima
        calls["grad" if torch.is_grad_enabled() else "no_grad"] += 1
        seen.append(value.detach())
        return value

    adv = apgd(images, torch.zeros_like(images), objective, eps=0.05, steps=12)
    assert calls == {"grad": 12, "no_grad": 1}  # as PGD, plus one forward for the last iterate
    best = torch.stack(seen).max(0).values
    assert torch.allclose(objective(adv, 0).detach(), best)
    assert float((adv - images).abs().max()) <= 0.05 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1


@pytest.mark.parametrize(
    "make",
    [
        lambda m: RegionAttack(m, "left", perturb_region="left", optimizer="apgd", steps=4, seed=0),
        lambda m: RegionPGD(m, "left", perturb_region="left", optimizer="apgd", steps=4, seed=0),
        lambda m: SegPGD(m, "left", perturb_region="left", optimizer="apgd", steps=4, seed=0),
        lambda m: CosPGD(m, "left", perturb_region="left", optimizer="apgd", steps=4, seed=0),
        lambda m: PositionChannelAttack(m, [0, 3], optimizer="apgd", steps=4, seed=0),
    ],
    ids=["RegionAttack", "RegionPGD", "SegPGD", "CosPGD", "PositionChannelAttack"],
)
def test_every_attack_runs_apgd_within_its_bounds_and_leaves_the_model(
    tiny_segmenter, images, make
):
    model = tiny_segmenter.train()
    before = snapshot(model)
    attack = make(model)
    adv = attack(images)
    assert_untouched(model, before)
    delta = adv - images
    assert float(delta.abs().max()) <= EPS + 1e-6 and float(delta.abs().max()) > 0
    if getattr(attack, "perturb_region", None) == "left":
        assert torch.equal(adv[..., 8:], images[..., 8:])
    assert torch.equal(make(model)(images), adv)  # seeded: repeatable
    with pytest.raises(ValueError):
        attack(images[:, :, :, :7] * 2)  # out of [0, 1]: refused, model still untouched
    assert_untouched(model, before)


def test_apgd_breaks_the_region_at_least_as_much_as_a_zero_perturbation(tiny_segmenter, images):
    with torch.no_grad():
        clean = tiny_segmenter(images).argmax(1)
    adv = RegionPGD(tiny_segmenter, "left", optimizer="apgd", steps=10, seed=0)(images)
    with torch.no_grad():
        attacked = tiny_segmenter(adv).argmax(1)
    assert (attacked[..., :8] != clean[..., :8]).float().mean() > 0.05


def test_an_unknown_optimizer_is_refused(tiny_segmenter):
    with pytest.raises(ValueError, match="optimizer must be one of"):
        RegionAttack(tiny_segmenter, "left", optimizer="adam")


def test_a_success_score_reported_by_the_objective_chooses_the_returned_iterate():
    """The loss steers the steps; the iterate returned is the one with the best score."""
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(3, 1, 4, 4, generator=generator)
    direction = torch.randn(3, 1, 4, 4, generator=generator)
    scores, seen = {}, []

    def objective(x, step):
        value = (x * direction).flatten(1).sum(1)  # rises steadily: the last iterate is best
        scores["last"] = -(x - images).abs().flatten(1).sum(1).detach()  # best: nearest the start
        seen.append((x.detach().clone(), scores["last"]))
        return value

    adv = apgd(images, torch.zeros_like(images), objective, eps=0.05, steps=6, scores=scores)
    points = torch.stack([x for x, _ in seen])
    values = torch.stack([s for _, s in seen])
    expected = points[values.argmax(0), torch.arange(3)]
    assert torch.equal(adv, expected)
    assert torch.equal(adv, images)  # the start scores best here
