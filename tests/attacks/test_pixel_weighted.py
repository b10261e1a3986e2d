"""SegPGD and CosPGD: the peer attacks, on the whole image and restricted to a region."""

import pytest
import torch
import torch.nn.functional as F

import regionattack
from regionattack import CosPGD, SegPGD, region_miou
from regionattack.attacks.objectives import cospgd_weights, region_mean_weights, segpgd_weights
from tests.helpers import assert_untouched, snapshot, tiny_task

EPS = 8 / 255
CLASSES = {"segpgd": SegPGD, "cospgd": CosPGD}
NAMES = list(CLASSES)


def make(name, model, region="left", **kwargs):
    return CLASSES[name](model, region, **{"steps": 3, "seed": 0, **kwargs})


def predict(model, images):
    with torch.no_grad():
        return model(images).argmax(1)


# ---------------------------------------------------------------- the scaling functions vs cospgd
@pytest.fixture
def reference():
    """The cospgd package's ``functions`` (a dev extra): the reference implementation."""
    return pytest.importorskip("cospgd", reason="cospgd is in the dev extras").functions


def random_case(generator, n=2, k=4, size=(6, 7)):
    logits = torch.randn(n, k, *size, generator=generator)
    targets = torch.randint(0, k, (n, *size), generator=generator)
    half = torch.rand(n, *size, generator=generator) < 0.5  # make both pixel groups non-empty
    targets = torch.where(half, logits.argmax(1), targets)
    return logits, targets, F.cross_entropy(logits, targets, reduction="none")


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("step", [0, 1, 4])
def test_segpgd_weights_match_cospgd_segpgd_scale(reference, generator, targeted, step):
    logits, targets, loss = random_case(generator)
    height, width = targets.shape[-2:]
    ours = (segpgd_weights(logits, targets, step, 5, targeted) * loss).sum() / (height * width)
    ref = reference.segpgd_scale(logits, targets, loss, step, 5, targeted=targeted)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("targeted", [False, True])
def test_cospgd_weights_match_cospgd_cospgd_scale(reference, generator, targeted):
    logits, targets, loss = random_case(generator)
    ours = cospgd_weights(logits, targets, targeted) * loss
    ref = reference.cospgd_scale(logits, targets, loss, 4, targeted=targeted)
    torch.testing.assert_close(ours, ref)


def test_weights_ignore_255_detach_and_resize(generator):
    logits, targets, _ = random_case(generator)
    targets[:, 0] = 255
    logits.requires_grad_(True)
    for weights in (segpgd_weights(logits, targets, 1, 3), cospgd_weights(logits, targets)):
        assert weights.shape == targets.shape and not weights.requires_grad
        assert (weights[:, 0] == 0).all() and (weights[:, 1:] > 0).all()
    small = segpgd_weights(torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 4, dtype=torch.long), 0, 1)
    assert small.shape == (1, 4, 4)


def test_region_mean_weights_average_over_valid_region_pixels():
    targets = torch.tensor([[[0, 255, 1, 1], [2, 2, 255, 0]]])
    weights = region_mean_weights("left", targets)
    expected = torch.tensor([[[1, 0, 0, 0], [1, 1, 0, 0]]]) / 3
    torch.testing.assert_close(weights, expected)
    assert torch.allclose(region_mean_weights(None, targets).sum(), torch.tensor(1.0))


# ---------------------------------------------------------------- the attacks
@pytest.mark.parametrize("region", ["left", None])
@pytest.mark.parametrize("name", NAMES)
def test_bounds_dtype_and_reproducibility(tiny_segmenter, images, name, region):
    attack = make(name, tiny_segmenter, region)
    original = images.clone()
    adv = attack(images)
    assert adv.shape == images.shape and adv.dtype == images.dtype
    assert (adv - images).abs().max() <= EPS + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv != images).any()
    assert torch.equal(images, original), "input modified"
    assert torch.equal(adv, make(name, tiny_segmenter, region)(images))
    assert attack(images.double()).dtype == torch.float64
    assert repr(attack).startswith(f"{CLASSES[name].__name__}(")


@pytest.mark.parametrize("name", NAMES)
def test_perturb_region_confines_the_change(tiny_segmenter, images, name):
    adv = make(name, tiny_segmenter, "left", perturb_region="right")(images)
    delta = (adv - images).abs()
    assert delta[..., :8].max() == 0 and delta[..., 8:].max() > 0


@pytest.mark.parametrize("name", NAMES)
def test_outside_and_ignored_pixels_do_not_steer_the_attack(tiny_segmenter, images, name):
    generator = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 3, (4, 16, 16), generator=generator)
    ignored = torch.zeros(16, 16, dtype=torch.bool)
    ignored[3:6, 2:5] = True
    with_255 = labels.clone()
    with_255[:, ignored] = 255
    with_255[..., 8:] = torch.randint(0, 3, (4, 16, 8), generator=generator)  # outside
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[:, :8] = True
    attack = make(name, tiny_segmenter, "left")
    adv = attack(images, with_255)
    assert torch.equal(adv, attack(images, labels, region=region & ~ignored))
    assert not torch.equal(adv, attack(images, labels))  # the 255 pixels did change the loss


@pytest.mark.parametrize("name", NAMES)
def test_attack_breaks_the_region_more_than_a_zero_attack(tiny_segmenter, generator, name):
    images, labels = tiny_task(8, generator)
    clean = predict(tiny_segmenter, make(name, tiny_segmenter, eps=0.0, steps=10)(images, labels))
    adv = make(name, tiny_segmenter, steps=10)(images, labels)
    attacked = predict(tiny_segmenter, adv)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[:, :8] = True
    accuracy_clean = (clean == labels)[:, inside].float().mean()
    accuracy_adv = (attacked == labels)[:, inside].float().mean()
    assert accuracy_adv < accuracy_clean - 0.08
    miou_clean = region_miou(clean, labels, "left", 3).inside
    miou_adv = region_miou(attacked, labels, "left", 3).inside
    assert miou_adv < miou_clean - 0.05


@pytest.mark.parametrize("name", NAMES)
def test_targeted_by_label_moves_region_towards_target(tiny_segmenter, images, name):
    clean = predict(tiny_segmenter, images)
    target = (clean + 1) % 3

    def hits_and_log_prob(adv):
        with torch.no_grad():
            log_probs = tiny_segmenter(adv).log_softmax(1)
        hits = (log_probs.argmax(1) == target)[..., :8].float().mean()
        return hits, log_probs.gather(1, target[:, None])[:, 0, :, :8].mean()

    attack = make(name, tiny_segmenter, eps=32 / 255, alpha=4 / 255, steps=20)
    untargeted_hits, _ = hits_and_log_prob(attack(images, clean))
    attack.set_mode_targeted_by_label(quiet=True)
    clean_hits, clean_log_prob = hits_and_log_prob(images)
    hits, log_prob = hits_and_log_prob(attack(images, target))
    assert clean_hits == 0 and hits > 0.2 and hits > untargeted_hits + 0.05
    assert log_prob > clean_log_prob + 1.5  # about 2 nats on this model
    with pytest.raises(ValueError, match="target map"):
        attack(images)


@pytest.mark.parametrize("name", NAMES)
def test_model_untouched_after_normal_and_failing_calls(tiny_segmenter, images, name):
    tiny_segmenter.train()
    before = snapshot(tiny_segmenter)
    attack = make(name, tiny_segmenter)
    attack(images)
    assert_untouched(tiny_segmenter, before)

    calls = {"n": 0}

    def fail_on_third(*_):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("failure midway")

    handle = tiny_segmenter.segmentation_head.register_forward_pre_hook(fail_on_third)
    try:
        with pytest.raises(RuntimeError, match="failure midway"):
            attack(images)
    finally:
        handle.remove()
    assert_untouched(tiny_segmenter, before)


@pytest.mark.parametrize("name", NAMES)
def test_works_under_no_grad(tiny_segmenter, images, name):
    with torch.no_grad():
        adv = make(name, tiny_segmenter, steps=2)(images)
    assert (adv != images).any()


@pytest.mark.parametrize("name", NAMES)
def test_bad_settings_are_rejected(tiny_segmenter, images, name):
    with pytest.raises(ValueError, match="region name"):
        make(name, tiny_segmenter, "middle")
    with pytest.raises(ValueError, match="region name"):
        make(name, tiny_segmenter, perturb_region="middle")
    with pytest.raises(ValueError, match="steps must be"):
        make(name, tiny_segmenter, steps=0)
    with pytest.raises(ValueError, match=r"eps is an L-inf radius in image units \[0, 1\]"):
        make(name, tiny_segmenter, eps=8)
    with pytest.raises(TypeError, match="seed must be an int or None"):
        make(name, tiny_segmenter, seed="a")
    with pytest.raises(ValueError, match="empty"):
        make(name, tiny_segmenter)(images, region=torch.zeros(16, 16))


def test_exported_at_the_top_level():
    assert {"SegPGD", "CosPGD"} <= set(regionattack.__all__)
    assert regionattack.attacks.SegPGD is SegPGD and regionattack.attacks.CosPGD is CosPGD


@pytest.mark.parametrize("name", NAMES)
def test_random_and_least_likely_targets_are_per_pixel(tiny_segmenter, images, name):
    attack = make(name, tiny_segmenter, steps=1)
    for set_mode in (attack.set_mode_targeted_random, attack.set_mode_targeted_least_likely):
        set_mode(quiet=True)
        adv = attack(images)
        assert adv.shape == images.shape and (adv - images).abs().max() <= EPS + 1e-6
