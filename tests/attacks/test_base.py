"""What every attack shares (SegmentationAttack): bounds, the model left untouched, bad input, torchattacks' machinery, save()."""

import logging

import pytest
import torch
import torchattacks
from torch.utils.data import DataLoader, TensorDataset
from torchattacks.attack import Attack

from regionattack import (
    PositionChannelAttack,
    RegionAttack,
    RegionPGD,
    rank_channels,
    with_normalization,
)
from regionattack.models import build_model
from tests.helpers import assert_untouched, snapshot

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


def test_save_with_the_attacks_own_per_sample_masks_and_batches_of_one(
    tiny_segmenter, generator, tmp_path
):
    images = torch.rand(4, 3, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (4, 16, 16), generator=generator)
    masks = torch.zeros(4, 16, 16, dtype=torch.bool)
    masks[:, :, :8] = True
    masks[1] = ~masks[1]  # image 1 is attacked on the right
    attack = RegionAttack(tiny_segmenter, masks, steps=1, seed=0)
    path = tmp_path / "adv.pt"
    attack.save(DataLoader(TensorDataset(images, labels)), path, verbose=False)
    saved = torch.load(path, weights_only=True)["adv_inputs"]
    for i in range(4):  # each batch of one is attacked on its own mask
        alone = attack(images[i : i + 1], labels[i : i + 1], region=masks[i : i + 1])
        torch.testing.assert_close(saved[i : i + 1], alone, atol=0, rtol=0)
    longer = DataLoader(TensorDataset(images.repeat(2, 1, 1, 1), labels.repeat(2, 1, 1)))
    with pytest.raises(ValueError, match="4 per-sample masks but the loader yields more images"):
        attack.save(longer, verbose=False)


@pytest.mark.parametrize("loader", ["images only", "bare tensors"])
def test_save_refuses_a_loader_without_labels_naming_what_came(tiny_segmenter, images, loader):
    data = {
        "images only": DataLoader(TensorDataset(images), batch_size=2),
        "bare tensors": [images[:2]],
    }[loader]
    with pytest.raises(TypeError, match=r"save needs a loader of \(images, labels\) batches"):
        RegionAttack(tiny_segmenter, "left", steps=1).save(data, verbose=False)
