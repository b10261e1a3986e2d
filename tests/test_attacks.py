import dataclasses
import itertools
import logging

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch.utils.data import DataLoader, TensorDataset
from torchattacks.attack import Attack

from regionattack import (
    PositionChannelAttack,
    RegionAttack,
    RegionPGD,
    rank_channels,
    regions,
    with_normalization,
)
from regionattack.attacks.objectives import margin_shortfall, pixel_cross_entropies, project
from regionattack.latent import predicted_classes
from regionattack.models import TinySegmenter, build_model
from regionattack.ranking import mean_weights, pixel_loss

from conftest import assert_untouched, snapshot

EPS = 8 / 255


def make_attacks(model):
    return {
        "region-segmentation": RegionAttack(model, "left", steps=3, seed=0),
        "region-channels": RegionAttack(model, "left", steps=3, seed=0, objective="channels", k=2),
        "region-both": RegionAttack(model, "left", steps=3, seed=0, objective="both", k=2),
        "region-pgd": RegionPGD(model, "left", steps=3, seed=0),
        "position-suppress": PositionChannelAttack(model, [0, 1], steps=3, seed=0),
        "position-flip": PositionChannelAttack(model, [0, 1], steps=3, seed=0, mode="flip"),
    }


ATTACKS = [
    "region-segmentation",
    "region-channels",
    "region-both",
    "region-pgd",
    "position-suppress",
    "position-flip",
]


@pytest.mark.parametrize("name", ATTACKS)
def test_bounds_dtype_device_and_reproducibility(tiny_segmenter, images, name):
    attack = make_attacks(tiny_segmenter)[name]
    original = images.clone()
    adv = attack(images)
    assert adv.shape == images.shape and adv.dtype == images.dtype and adv.device == images.device
    assert (adv - images).abs().max() <= EPS + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv != images).any()
    assert torch.equal(images, original), "input modified"
    assert torch.equal(adv, make_attacks(tiny_segmenter)[name](images))
    double = attack(images.double())
    assert double.dtype == torch.float64


@pytest.mark.parametrize("name", ATTACKS)
def test_model_untouched_after_normal_and_failing_calls(tiny_segmenter, images, name):
    tiny_segmenter.train()
    before = snapshot(tiny_segmenter)
    attack = make_attacks(tiny_segmenter)[name]
    attack(images)
    assert_untouched(tiny_segmenter, before)

    calls = {"n": 0}

    def fail_on_fourth(*_):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("failure midway")

    handle = tiny_segmenter.segmentation_head.register_forward_pre_hook(fail_on_fourth)
    handle_enc = tiny_segmenter.encoder.register_forward_pre_hook(fail_on_fourth)
    try:
        with pytest.raises(RuntimeError, match="failure midway"):
            attack(images)
    finally:
        handle.remove()
        handle_enc.remove()
    assert_untouched(tiny_segmenter, before)


def test_perturb_region_confines_the_change(tiny_segmenter, images):
    attack = RegionAttack(tiny_segmenter, "left", perturb_region="right", steps=3, seed=0)
    adv = attack(images)
    delta = (adv - images).abs()
    assert delta[..., :8].max() == 0
    assert delta[..., 8:].max() > 0


def test_region_override_per_call(tiny_segmenter, images):
    attack = RegionAttack(tiny_segmenter, "left", perturb_region="left", steps=2, seed=0)
    adv = attack(images, None, region="right")
    assert (adv - images)[..., 8:].abs().max() == 0  # perturb_region still applies


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"images": "big"}, ValueError, r"\[0, 1\]"),
        ({"images": "rank"}, ValueError, r"\(N, C, H, W\)"),
        ({"images": "nan"}, ValueError, "NaN"),
        ({"labels": "shape"}, ValueError, r"labels must be \(N, H, W\)"),
        ({"labels": "float"}, TypeError, "integer"),
        ({"labels": "class"}, ValueError, "class 7"),
        ({"region": "shape"}, ValueError, "region mask must be"),
        ({"region": "empty"}, ValueError, "empty"),
    ],
)
def test_bad_input_is_rejected(tiny_segmenter, images, kwargs, error, match):
    labels = torch.zeros(4, 16, 16, dtype=torch.long)
    region = None
    bad_images = {"big": images * 2, "rank": images[0], "nan": images * float("nan")}
    bad_labels = {"shape": labels[:, :8], "float": labels.float(), "class": labels + 7}
    bad_regions = {"shape": torch.ones(8, 8), "empty": torch.zeros(16, 16)}
    images = bad_images.get(kwargs.get("images"), images)
    labels = bad_labels.get(kwargs.get("labels"), labels)
    region = bad_regions.get(kwargs.get("region"), region)
    before = snapshot(tiny_segmenter)
    with pytest.raises(error, match=match):
        RegionAttack(tiny_segmenter, "left", steps=1)(images, labels, region=region)
    assert_untouched(tiny_segmenter, before)


def test_bad_settings_are_rejected(tiny_segmenter, images):
    with pytest.raises(ValueError, match="objective must be one of"):
        RegionAttack(tiny_segmenter, "left", objective="fast")
    with pytest.raises(ValueError, match="no layer"):
        RegionAttack(tiny_segmenter, "left", objective="channels", layer="decoder.9")
    with pytest.raises(ValueError, match="region name"):
        RegionAttack(tiny_segmenter, "middle")
    with pytest.raises(ValueError, match="eps must be"):
        RegionAttack(tiny_segmenter, "left", eps=-1)
    with pytest.raises(ValueError, match="at most the channel count 8"):
        RegionAttack(tiny_segmenter, "left", objective="channels", k=9)(images)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        PositionChannelAttack(tiny_segmenter, [8])(images)
    ranking = rank_channels(tiny_segmenter, images)
    with pytest.raises(ValueError, match="at most the channel count"):
        PositionChannelAttack(tiny_segmenter, ranking, k=9)


def test_given_channels_and_ranking_are_used(tiny_segmenter, images):
    ranking = rank_channels(tiny_segmenter, images, region="left")
    from_ranking = RegionAttack(
        tiny_segmenter, "left", objective="channels", channels=ranking, k=2, seed=0
    )(images)
    from_ids = RegionAttack(
        tiny_segmenter, "left", objective="channels", channels=ranking.top(2), seed=0
    )(images)
    assert torch.equal(from_ranking, from_ids)


def test_targeted_by_label_moves_region_towards_target(tiny_segmenter, images):
    with torch.no_grad():
        clean = tiny_segmenter(images).argmax(1)
    target = (clean + 1) % 3
    attack = RegionAttack(tiny_segmenter, "left", eps=32 / 255, alpha=4 / 255, steps=20, seed=0)
    attack.set_mode_targeted_by_label(quiet=True)
    adv = attack(images, target)
    with torch.no_grad():
        pred = tiny_segmenter(adv).argmax(1)
    hit_before = (clean[..., :8] == target[..., :8]).float().mean()
    hit_after = (pred[..., :8] == target[..., :8]).float().mean()
    assert hit_before == 0 and hit_after > 0.3
    with pytest.raises(ValueError, match="target map"):
        attack(images)


@pytest.mark.parametrize("mode", ["random", "least_likely"])
def test_per_pixel_target_helpers(tiny_segmenter, images, mode):
    attack = RegionAttack(tiny_segmenter, "left", steps=1, seed=0)
    if mode == "random":
        attack.set_mode_targeted_random(quiet=True)
        targets = attack.get_random_target_label(images)
    else:
        attack.set_mode_targeted_least_likely(quiet=True)
        targets = attack.get_least_likely_label(images)
    with torch.no_grad():
        logits = tiny_segmenter(images)
    assert targets.shape == (4, 16, 16)
    assert (targets != logits.argmax(1)).all()
    if mode == "least_likely":
        assert torch.equal(targets, logits.argmin(1))
    assert attack(images).shape == images.shape


def test_normalization_paths_agree(images):
    torch.manual_seed(0)
    model = build_model("smp:FPN:resnet18", 3).eval()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    wrapped = RegionAttack(with_normalization(model, mean, std), "left", steps=2, seed=0)
    images = torch.nn.functional.interpolate(images, size=64)
    adv_wrapped = wrapped(images)
    atk = RegionAttack(model, "left", steps=2, seed=0)
    atk.set_normalization_used(mean, std)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    adv_normalized = atk((images - m) / s)  # torchattacks convention: normalized in, normalized out
    # The two paths see the images up to float rounding ((x - m) / s * s + m), so a gradient that
    # is zero up to rounding may take the other sign: allow a few such pixels, no more.
    differs = ((adv_normalized * s + m) - adv_wrapped).abs() > 1e-5
    assert int(differs.sum()) <= differs.numel() // 1000, int(differs.sum())
    assert "normalization_used=True" in repr(atk)


def test_torchattacks_machinery_side_by_side_with_pgd(images):
    torch.manual_seed(0)
    model = build_model("smp:FPN:resnet18", 3).eval()
    images = torch.nn.functional.interpolate(images, size=64)
    labels = torch.randint(0, 3, (4, 64, 64))
    pgd = torchattacks.PGD(model, eps=EPS, alpha=2 / 255, steps=2)
    ours = RegionAttack(model, "left", steps=2, seed=0)
    assert (pgd(images, labels) - images).abs().max() <= EPS + 1e-6
    assert (ours(images, labels) - images).abs().max() <= EPS + 1e-6
    text = repr(ours)
    assert text.startswith("RegionAttack(") and "eps=" in text and "steps=2" in text
    model.train()
    ours.set_model_training_mode(model_training=True)
    before = snapshot(model)
    ours(images, labels)
    assert_untouched(model, before)
    with pytest.raises(TypeError, match="MultiAttack"):
        torchattacks.MultiAttack([ours, RegionPGD(model, "left", steps=1)])(images, labels)


def test_save_reports_pixel_metrics_and_loads_in_torchattacks(
    tiny_segmenter, images, tmp_path, caplog
):
    labels = torch.randint(0, 3, (4, 16, 16))
    loader = DataLoader(TensorDataset(images, labels), batch_size=2)
    attack = RegionAttack(tiny_segmenter, "left", steps=2, seed=0)
    path = tmp_path / "adv.pt"
    with caplog.at_level(logging.INFO, logger="regionattack.attacks.base"):
        accuracy, l2, seconds = attack.save(
            loader, path, return_verbose=True, save_predictions=True
        )
    assert 0 <= accuracy <= 100 and l2 > 0 and seconds >= 0
    assert "mIoU all" in caplog.text
    reloaded = Attack.load(path, batch_size=4, load_predictions=True)
    adv, saved_labels, preds = next(iter(reloaded))
    assert (
        adv.shape == images.shape
        and torch.equal(saved_labels, labels)
        and preds.shape == labels.shape
    )


def test_unused_arguments_are_rejected(tiny_segmenter):
    with pytest.raises(ValueError, match="only by the 'channels' and 'both'"):
        RegionAttack(tiny_segmenter, "left", k=2)
    with pytest.raises(ValueError, match="k is only used"):
        RegionAttack(tiny_segmenter, "left", objective="channels", channels=[0, 1], k=2)
    with pytest.raises(ValueError, match="k is only used"):
        PositionChannelAttack(tiny_segmenter, [0, 1], k=2)


def test_attacks_work_under_no_grad(tiny_segmenter, images):
    with torch.no_grad():
        adv = RegionAttack(tiny_segmenter, "left", steps=2, seed=0)(images)
    assert (adv != images).any()


def test_save_checks_save_type_first(tiny_segmenter, images, tmp_path):
    loader = DataLoader(
        TensorDataset(images, torch.zeros(4, 16, 16, dtype=torch.long)), batch_size=2
    )
    attack = RegionAttack(tiny_segmenter, "left", steps=1)
    with pytest.raises(ValueError, match="save_type"):
        attack.save(loader, tmp_path / "x.pt", save_type="half")


def test_save_with_per_sample_masks_and_a_short_last_batch(tiny_segmenter, generator):
    images = torch.rand(5, 3, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (5, 16, 16), generator=generator)
    masks = torch.zeros(5, 16, 16, dtype=torch.bool)
    masks[:, :, :4] = True
    loader = DataLoader(TensorDataset(images, labels), batch_size=2)
    attack = RegionAttack(tiny_segmenter, "left", steps=1, seed=0)
    accuracy, _, _ = attack.save(loader, verbose=False, return_verbose=True, region=masks)
    assert 0 <= accuracy <= 100


def test_targeted_channels_objective_needs_no_target_map(tiny_segmenter, images):
    attack = RegionAttack(tiny_segmenter, "left", objective="channels", k=2, steps=1, seed=0)
    attack.set_mode_targeted_by_label(quiet=True)
    assert attack(images).shape == images.shape


def reference_region_attack(model, images, labels, *, eps, alpha, steps, seed, margin=None):
    """RegionAttack's defaults written out plainly: argmax, two F.cross_entropy calls (or, with
    ``margin``, the hinge on the clean class's lead over the runner-up outside), the step decaying
    linearly from 2 * alpha."""
    done_weight, flipped_weight, outside_weight = 0.1, 4.0, 1.0
    with torch.no_grad():
        clean = model(images).argmax(dim=1)
    inside = regions.named("left", tuple(images.shape[-2:]))[None]
    valid = labels != 255
    inside_w, outside_w = mean_weights(torch.stack([inside, ~inside]), valid)
    delta = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed))
    delta = project(images, (2 * delta - 1) * eps, eps)
    for step in range(steps):
        adv = (images + delta).requires_grad_(True)
        logits = model(adv)
        predicted = logits.detach().argmax(dim=1)
        inside_ce = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
        outside_ce = F.cross_entropy(logits, clean, ignore_index=255, reduction="none")
        if margin is not None:
            top2 = logits.topk(2, dim=1).values
            own = logits.gather(1, clean[:, None])[:, 0]
            rival = torch.where(own == top2[:, 0], top2[:, 1], top2[:, 0])
            outside_ce = (margin - (own - rival)).clamp_min(0)
        inside_scale = torch.where(predicted != labels, done_weight, 1.0)
        outside_scale = 1.0 + flipped_weight * (predicted != clean).float()
        loss = (inside_ce * (inside_w * inside_scale)).flatten(1).sum(dim=1)
        loss = loss - outside_weight * (outside_ce * (outside_w * outside_scale)).flatten(1).sum(1)
        (grad,) = torch.autograd.grad(loss.sum(), adv)
        delta = project(images, delta + 2 * alpha * (1 - step / steps) * grad.sign(), eps)
    return (images + delta).detach()


def test_region_attack_matches_a_plain_reference_bit_for_bit(tiny_segmenter, images, generator):
    # RegionAttack shares one log-softmax between its two terms and takes max().indices for the
    # argmax (benchmarks/perf.py); the adversarial images must not change by a single bit.
    labels = torch.randint(0, 3, (4, 16, 16), generator=generator)
    labels[:, :3] = 255
    attack = RegionAttack(tiny_segmenter, "left", eps=EPS, alpha=2 / 255, steps=4, seed=0)
    expected = reference_region_attack(
        tiny_segmenter, images, labels, eps=EPS, alpha=2 / 255, steps=4, seed=0
    )
    assert torch.equal(attack(images, labels), expected)


def test_outside_margin_matches_a_plain_reference(tiny_segmenter, images, generator):
    labels = torch.randint(0, 3, (4, 16, 16), generator=generator)
    labels[:, :3] = 255
    attack = RegionAttack(tiny_segmenter, "left", eps=EPS, steps=4, seed=0, outside_margin=0.5)
    expected = reference_region_attack(
        tiny_segmenter, images, labels, eps=EPS, alpha=2 / 255, steps=4, seed=0, margin=0.5
    )
    assert torch.equal(attack(images, labels), expected)
    default = RegionAttack(tiny_segmenter, "left", eps=EPS, steps=4, seed=0)
    assert not torch.equal(default(images, labels), expected)  # the hinge is what was used


@pytest.mark.parametrize(("value", "error"), [(-0.1, ValueError), ("0.1", TypeError)])
def test_outside_margin_is_checked(tiny_segmenter, value, error):
    with pytest.raises(error, match="outside_margin"):
        RegionAttack(tiny_segmenter, "left", outside_margin=value)


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


@pytest.mark.parametrize("objective", ["both", "channels"])
def test_ranking_on_the_batch_reuses_the_clean_pass(tiny_segmenter, images, objective):
    """The channels ranked on the batch come from the clean forward pass: the encoder runs once
    for the clean prediction and once per step, and the result is that of the plain ranking."""
    from regionattack.ranking import gradient_effects, region_scores

    calls = []
    first = tiny_segmenter.encoder[0]  # runs only when the encoder computes (not when replayed)
    hook = first.register_forward_hook(lambda *_: calls.append(1))
    try:
        adv = RegionAttack(tiny_segmenter, "left", objective=objective, k=2, steps=3, seed=0)(
            images
        )
    finally:
        hook.remove()
    assert len(calls) == 1 + 3  # was 1 + 1 (clean latent) + 1 (ranking) + 3
    with torch.no_grad():
        clean = tiny_segmenter(images).argmax(dim=1)
    inside = regions.named("left", (16, 16))[None].expand(4, -1, -1)
    weights = mean_weights(torch.stack([inside, ~inside]), torch.ones_like(clean, dtype=torch.bool))
    effects = gradient_effects(tiny_segmenter, images, weights, targets=clean)
    chosen = region_scores(effects[:, 0], effects[:, 1]).topk(2, dim=1).indices
    given = RegionAttack(
        tiny_segmenter, "left", objective=objective, channels=chosen, steps=3, seed=0
    )
    assert torch.equal(adv, given(images))


# ---------------------------------------------------------------- settings checked up front
@pytest.mark.parametrize("name", ["region", "position", "region-pgd"])
def test_eps_and_alpha_in_pixel_units_are_refused(tiny_segmenter, name):
    build = {
        "region": lambda **kw: RegionAttack(tiny_segmenter, "left", **kw),
        "position": lambda **kw: PositionChannelAttack(tiny_segmenter, [0, 1], **kw),
        "region-pgd": lambda **kw: RegionPGD(tiny_segmenter, "left", **kw),
    }[name]
    with pytest.raises(
        ValueError, match=r"eps is an L-inf radius in image units \[0, 1\]; got 8 .*8/255"
    ):
        build(eps=8)
    with pytest.raises(ValueError, match=r"alpha is an L-inf step in image units \[0, 1\]; got 2"):
        build(alpha=2)
    assert build(eps=1.0, alpha=1.0).eps == 1.0


@pytest.mark.parametrize("seed", ["a", True, 0.5])
def test_seed_must_be_an_int_or_none(tiny_segmenter, seed):
    with pytest.raises(TypeError, match="seed must be an int or None"):
        RegionAttack(tiny_segmenter, "left", seed=seed)
    with pytest.raises(TypeError, match="seed must be an int or None"):
        PositionChannelAttack(tiny_segmenter, [0], seed=seed)


def test_set_normalization_used_on_a_normalized_model_is_refused(tiny_segmenter, images):
    wrapped = with_normalization(tiny_segmenter, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
    attack = RegionAttack(wrapped, "left", steps=1)
    with pytest.raises(ValueError, match="already normalises its inputs"):
        attack.set_normalization_used((0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
    assert attack.normalization_used is None
    assert attack(images).shape == images.shape  # still usable, on images in [0, 1]
    nested = torch.nn.Sequential(wrapped)
    with pytest.raises(ValueError, match="already normalises its inputs"):
        RegionAttack(nested, "left", steps=1).set_normalization_used((0.5,) * 3, (0.2,) * 3)


def test_least_likely_kth_min_must_exclude_the_label(tiny_segmenter, images):
    attack = RegionAttack(tiny_segmenter, "left", steps=1, seed=0)
    attack.set_mode_targeted_least_likely(kth_min=2, quiet=True)  # 3 classes: kth_min 1 or 2
    with torch.no_grad():
        logits = tiny_segmenter(images)
    second = logits.scatter(1, logits.argmax(1, keepdim=True), float("inf"))
    assert torch.equal(attack.get_least_likely_label(images), second.argsort(1)[:, 1])
    before = snapshot(tiny_segmenter)
    calls = []
    hook = tiny_segmenter.encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        for kth_min in (3, 4):
            attack.set_mode_targeted_least_likely(kth_min=kth_min, quiet=True)
            calls.clear()
            with pytest.raises(
                ValueError,
                match=rf"kth_min must be in \[1, 2\] for a model with 3 classes.*"
                rf"got {kth_min}",
            ):
                attack(images)
            assert len(calls) <= 2  # clean prediction and the target map only: no attack step
    finally:
        hook.remove()
    assert_untouched(tiny_segmenter, before)
    with pytest.raises(ValueError, match="kth_min must be positive; got 0"):
        attack.set_mode_targeted_least_likely(kth_min=0, quiet=True)
    with pytest.raises(TypeError, match="kth_min must be an int; got float"):
        attack.set_mode_targeted_least_likely(kth_min=1.5, quiet=True)


@pytest.mark.parametrize(
    "channels",
    [
        [],
        torch.zeros(8, dtype=torch.bool),
        torch.zeros(4, 0, dtype=torch.long),
        torch.zeros(2, 8, dtype=torch.bool),
    ],
    ids=["empty-list", "all-false-mask", "n-by-0", "all-false-per-sample"],
)
def test_position_channel_attack_refuses_an_empty_selection(tiny_segmenter, channels):
    with pytest.raises(ValueError, match="select no channel|non-empty"):
        PositionChannelAttack(tiny_segmenter, channels)


def test_a_per_sample_selection_empty_for_one_image_is_refused_when_built(tiny_segmenter):
    mask = torch.zeros(4, 8, dtype=torch.bool)
    mask[[0, 1, 3], 0] = True
    with pytest.raises(ValueError, match=r"select no channel for sample\(s\) \[2\]"):
        PositionChannelAttack(tiny_segmenter, mask, steps=1)
    with pytest.raises(ValueError, match=r"select no channel for sample\(s\) \[2\]"):
        RegionAttack(tiny_segmenter, "left", objective="channels", channels=mask)


@pytest.mark.parametrize("channels", ["abc", [0.5, 1.0], [[0, 1], [2]], {0, 1}])
def test_channel_specs_of_the_wrong_type_are_refused_when_built(tiny_segmenter, channels):
    with pytest.raises(TypeError, match="channel"):
        PositionChannelAttack(tiny_segmenter, channels)
    with pytest.raises(TypeError, match="channel"):
        RegionAttack(tiny_segmenter, "left", objective="channels", channels=channels)


# ---------------------------------------------------------------- rankings belong to a model/layer
def test_a_ranking_of_another_model_or_layer_is_refused(tiny_segmenter, images):
    ranking = rank_channels(tiny_segmenter, images, region="left")
    torch.manual_seed(1)
    other = TinySegmenter(num_classes=3, latent_channels=8).eval()
    for make in (
        lambda model, r: PositionChannelAttack(model, r),
        lambda model, r: RegionAttack(model, "left", objective="channels", channels=r),
        lambda model, r: RegionAttack(model, "left", objective="both", channels=r),
    ):
        with pytest.raises(ValueError, match=r"made on another model.*ranking\.top\(k\)"):
            make(other, ranking)
        make(other, ranking.top(2))  # reusing the channels on purpose
        with pytest.raises(
            ValueError, match=r"layer 'decoder.0' but the attack's latent layer is 'encoder'"
        ):
            make(tiny_segmenter, dataclasses.replace(ranking, layer="decoder.0"))
        make(tiny_segmenter, ranking)
        make(other, dataclasses.replace(ranking, model_digest=None))  # no digest: no check
        wrapped = with_normalization(tiny_segmenter, (0.5,) * 3, (0.2,) * 3)
        make(wrapped, ranking)  # the wrapper adds no weights: the same network
        make(tiny_segmenter, rank_channels(wrapped, images, method="flip"))


def test_a_ranking_is_digested_once_per_attack(tiny_segmenter, images, monkeypatch):
    import regionattack.ranking as ranking_module

    ranking = rank_channels(tiny_segmenter, images, region="left")
    calls = []
    real = ranking_module.state_digest
    monkeypatch.setattr(ranking_module, "state_digest", lambda m: calls.append(1) or real(m))
    attack = RegionAttack(
        tiny_segmenter, "left", objective="channels", channels=ranking, k=2, steps=3
    )
    attack(images)
    attack(images)
    assert len(calls) == 1


@pytest.mark.parametrize("name", ["RegionAttack", "RegionPGD", "CosPGD", "SegPGD", "SEA"])
def test_given_clean_predictions_save_the_clean_pass_and_change_nothing(
    tiny_segmenter, images, name
):
    import regionattack as ra

    attack = getattr(ra, name)(tiny_segmenter, region="left", eps=EPS, steps=2, seed=0)
    with torch.no_grad():
        clean = tiny_segmenter(images).argmax(dim=1)
    calls = []
    hook = tiny_segmenter.register_forward_hook(lambda *_: calls.append(1))
    try:
        plain = attack(images)
        runs = len(calls)
        given = attack(images, clean=clean)
    finally:
        hook.remove()
    assert torch.equal(given, plain)
    assert len(calls) - runs == runs - 1  # one forward pass fewer
    with pytest.raises(ValueError, match=r"clean must be \(N, H, W\)"):
        attack(images, clean=clean[:1])
