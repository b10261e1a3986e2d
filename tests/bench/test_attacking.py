"""The bench's attacks: built by name, run over this process's images, summed and summarised."""

import math

import pytest
import torch
from torch.utils.data import TensorDataset

from regionattack import CosPGD, PositionChannelAttack, RegionAttack, UniformNoise, rank_channels
from regionattack.bench.attacking import AttackOutcome, run_attack, suite_attack, summarize_attack
from regionattack.bench.setting import Setting
from regionattack.metrics import MaskedConfusions, region_specificity
from regionattack.ranking import default_k
from tests.helpers import tiny_task

EPS = 8 / 255
LEFT = torch.zeros(16, 16, dtype=torch.bool)
LEFT[:, :8] = True


@pytest.fixture
def data():
    images, labels = tiny_task(5, torch.Generator().manual_seed(6))
    labels[:, :3] = 255  # an ignored band at the top
    return images, labels


def setting_of(model, data, batch_size=2):
    return Setting(model, TensorDataset(*data), batch_size, 3, {}, progress=False)


def predictions(model, images):
    with torch.no_grad():
        return model.eval()(images).argmax(1)


# ---------------------------------------------------------------- suite_attack
def test_suite_attack_builds_the_registered_attack_with_the_suites_settings(tiny_segmenter):
    options = {"outside_weight": 2.0}
    attack = suite_attack(
        "RegionAttack[apgd]", tiny_segmenter, EPS, LEFT, steps=3, seed=4, options=options
    )
    assert type(attack) is RegionAttack
    assert (attack.eps, attack.steps, attack.seed, attack.optimizer) == (EPS, 3, 4, "apgd")
    assert attack.outside_weight == 2.0 and torch.equal(attack.region, LEFT)
    assert options == {"outside_weight": 2.0}  # the caller's options are not written to
    assert type(suite_attack("CosPGD", tiny_segmenter, EPS, None, steps=1, seed=0)) is CosPGD


def test_an_attack_on_its_regions_channels_takes_the_ranking(tiny_segmenter, images):
    ranking = rank_channels(tiny_segmenter, images, region="left")
    with pytest.raises(ValueError, match=r"PositionChannelAttack needs the ranking"):
        suite_attack("PositionChannelAttack", tiny_segmenter, EPS, LEFT, steps=1, seed=0)
    attack = suite_attack(
        "PositionChannelAttack", tiny_segmenter, EPS, LEFT, steps=1, seed=0, ranking=ranking
    )
    assert type(attack) is PositionChannelAttack
    assert torch.equal(attack.channels, ranking.top(default_k(ranking.num_channels)))
    pgd = suite_attack("PGD", tiny_segmenter, EPS, LEFT, steps=1, seed=0, ranking=ranking)
    assert pgd.steps == 1  # an attack that takes no ranking ignores it


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [("FGSM", {}, "unknown attack 'FGSM'"), ("PGD", {"colour": 1}, "colour")],
)
def test_unknown_attacks_and_options_are_refused(tiny_segmenter, name, options, match):
    with pytest.raises(ValueError, match=match):
        suite_attack(name, tiny_segmenter, EPS, LEFT, steps=1, seed=0, options=options)


# ---------------------------------------------------------------- run_attack
def test_an_attack_that_changes_nothing_measures_zero(tiny_segmenter, data):
    outcome = run_attack(
        setting_of(tiny_segmenter, data), lambda x, y: x.clone(), LEFT, description="none"
    )
    assert outcome.images == 5
    assert torch.equal(outcome.clean.counts, outcome.attacked.counts)
    assert outcome.changed.tolist() == [0, 0]
    assert outcome.counted.tolist() == [5 * 13 * 8, 5 * 13 * 8]  # valid pixels inside / outside
    assert (outcome.linf, outcome.l2_sum) == (0.0, 0.0) and outcome.seconds >= 0
    clean = predictions(tiny_segmenter, data[0])
    expected = MaskedConfusions(3, {"region": LEFT})
    expected.update(clean, data[1])
    assert torch.equal(outcome.clean.counts, expected.counts)


def test_the_outcome_sums_the_attacks_effect_over_all_batches(tiny_segmenter, data):
    images, labels = data
    attack = UniformNoise(tiny_segmenter, eps=32 / 255, seed=1)
    outcome = run_attack(setting_of(tiny_segmenter, data), attack, LEFT, description="noise")
    adversarial = torch.cat([attack(images[i : i + 2]) for i in (0, 2, 4)])
    delta = (adversarial - images).flatten(1)
    assert outcome.linf == pytest.approx(float(delta.abs().max()))
    assert outcome.l2_sum == pytest.approx(float(delta.norm(dim=1).sum()), rel=1e-6)
    clean, attacked = predictions(tiny_segmenter, images), predictions(tiny_segmenter, adversarial)
    expected = MaskedConfusions(3, {"region": LEFT})
    expected.update(attacked, labels)
    assert torch.equal(outcome.attacked.counts, expected.counts)
    changed = (clean != attacked) & (labels != 255)
    assert outcome.changed.tolist() == [int(changed[:, LEFT].sum()), int(changed[:, ~LEFT].sum())]
    assert outcome.changed.sum() > 0


def test_the_attack_gets_the_clean_predictions_and_a_seeded_generator(tiny_segmenter, data):
    images = data[0]
    calls = []

    def attack(batch, labels, clean):
        calls.append((clean, torch.rand(3)))
        return batch

    state = torch.get_rng_state()
    run_attack(setting_of(tiny_segmenter, data), attack, LEFT, description="seeded", seed=9)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is kept
    expected_clean = predictions(tiny_segmenter, images).split(2)
    assert all(torch.equal(c, e) for (c, _), e in zip(calls, expected_clean, strict=True))
    expected_draw = torch.rand(3, generator=torch.Generator().manual_seed(9))
    assert all(torch.equal(draw, expected_draw) for _, draw in calls)  # each batch from the seed

    plain = []
    run_attack(
        setting_of(tiny_segmenter, data),
        lambda batch, labels: plain.append(labels) or batch,  # takes no clean=
        LEFT,
        description="plain",
    )
    assert len(plain) == 3


def test_max_images_and_examples(tiny_segmenter, data):
    setting = setting_of(tiny_segmenter, data)
    outcome = run_attack(setting, lambda x, y: x, LEFT, description="some", max_images=3)
    assert outcome.images == 3 and int(outcome.counted.sum()) == 3 * 13 * 16
    images, labels, clean, preds = outcome.examples
    assert torch.equal(images, data[0][:2]) and torch.equal(labels, data[1][:2])  # first batch
    assert torch.equal(clean, preds) and clean.shape == (2, 16, 16)
    few = run_attack(setting, lambda x, y: x, LEFT, description="few", keep_examples=1)
    assert few.examples[0].shape[0] == 1
    assert (
        run_attack(setting, lambda x, y: x, LEFT, description="n", keep_examples=0).examples is None
    )


# ---------------------------------------------------------------- summarize_attack
def outcome_of(clean_preds, attacked_preds, targets, **fields):
    mask = torch.tensor([[True, True, False, False]])
    clean, attacked = MaskedConfusions(2, {"region": mask}), MaskedConfusions(2, {"region": mask})
    clean.update(torch.tensor([[clean_preds]]), torch.tensor([[targets]]))
    attacked.update(torch.tensor([[attacked_preds]]), torch.tensor([[targets]]))
    defaults = {
        "changed": torch.tensor([2, 0]),
        "counted": torch.tensor([2, 2]),
        "linf": 0.03,
        "l2_sum": 3.0,
        "images": 2,
        "seconds": 1.0,
        "examples": None,
    }
    return AttackOutcome(clean=clean, attacked=attacked, **(defaults | fields))


def test_summarize_attack_reports_inside_outside_drops_and_per_image_numbers():
    outcome = outcome_of([0, 1, 0, 1], [1, 0, 0, 1], [0, 1, 0, 1])
    summary = summarize_attack(outcome)
    clean, attacked = outcome.clean.region("region"), outcome.attacked.region("region")
    assert summary == {
        "images": 2,
        "miou": attacked.all,
        "miou_inside": 0.0,
        "miou_outside": 1.0,
        "clean_miou": 1.0,
        "clean_miou_inside": 1.0,
        "clean_miou_outside": 1.0,
        "drop_inside": 1.0,
        "drop_outside": 0.0,
        "specificity": region_specificity(clean, attacked),
        "changed_inside": 1.0,
        "changed_outside": 0.0,
        "linf": 0.03,
        "l2": 1.5,
        "seconds_per_image": 0.5,
        "budget_met": None,  # the attack had no outside budget
    }
    assert summary["specificity"] == 1000.0  # the outside drop is floored


def test_summarize_attack_without_pixels_is_nan_and_without_images_divides_by_one():
    outcome = outcome_of([0, 1, 0, 1], [0, 1, 0, 1], [0, 1, 0, 1], counted=torch.tensor([4, 0]))
    outcome.changed = torch.tensor([1, 0])
    outcome.images, outcome.l2_sum, outcome.seconds = 0, 0.0, 0.0
    summary = summarize_attack(outcome)
    assert summary["changed_inside"] == 0.25
    assert math.isnan(summary["changed_outside"])  # no outside pixels: no measurement, not 0
    assert (summary["l2"], summary["seconds_per_image"], summary["images"]) == (0.0, 0.0, 0)


def test_an_attacks_outside_budget_is_counted(tiny_segmenter):
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = tiny_segmenter(images).argmax(1)
    setting = Setting(tiny_segmenter, TensorDataset(images, labels), 2, 3, {})
    left = torch.zeros(16, 16, dtype=torch.bool)
    left[:, :8] = True
    attack = RegionAttack(tiny_segmenter, left, steps=2, seed=0, max_outside=1.0)
    outcome = run_attack(setting, attack, left, description="budget")
    assert outcome.budget.tolist() == [4, 4]  # a budget of every outside pixel is always kept
    assert summarize_attack(outcome)["budget_met"] == 1.0
