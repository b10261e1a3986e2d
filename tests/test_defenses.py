"""Tests of regionattack.defenses: AugShift and padding conversion, in training and checkpoints."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from torch import nn

from regionattack.defenses import (
    PADDING_MODES,
    AugShift,
    PaddedConv2d,
    _pad,
    augshift_loss,
    padding_modes,
    set_padding,
)
from regionattack.models import (
    TinySegmenter,
    build_from_checkpoint,
    build_model,
    save_checkpoint,
    train_segmenter,
)
from regionattack.normalization import unwrap, with_normalization
from tests.helpers import REPO, assert_untouched, snapshot, tiny_task

SMALL_UNET = ("smp:Unet:mobilenet_v2", {"encoder_depth": 3, "decoder_channels": [16, 8, 4]})


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# augshift_loss ---------------------------------------------------------------------------------


def test_augshift_loss_is_zero_without_shift(tiny_segmenter, images):
    assert augshift_loss(tiny_segmenter, images, max_shift=0.0).item() == 0.0


@pytest.mark.parametrize("training", [False, True])
def test_augshift_loss_is_positive_differentiable_and_leaves_the_model_as_it_was(images, training):
    model = TinySegmenter().train(training)
    model.encoder[0].weight.requires_grad_(False)  # a frozen layer stays frozen
    before = snapshot(model)
    loss = augshift_loss(model, images, generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and loss.item() > 0
    if training:  # batch norm's running statistics see the views, as with any augmentation
        after = snapshot(model)
        assert all(after[key] == before[key] for key in ("training", "requires_grad", "hooks"))
        means = [name for name in before["buffers"] if name.endswith("running_mean")]
        assert means and not torch.equal(after["buffers"][means[0]], before["buffers"][means[0]])
    else:
        assert_untouched(model, before)
    loss.backward()
    assert model.encoder[0].weight.grad is None
    encoder_grad = model.encoder[3].weight.grad
    assert encoder_grad is not None and encoder_grad.abs().sum() > 0
    assert model.segmentation_head.weight.grad is None  # the model ran only up to the latent


def test_augshift_loss_sees_through_normalization_and_takes_a_layer(images):
    model = TinySegmenter()
    wrapped = with_normalization(model, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    seeded = dict(max_shift=0.2, generator=torch.Generator().manual_seed(1))
    on_wrapped = augshift_loss(wrapped, images, **seeded)
    seeded["generator"] = torch.Generator().manual_seed(1)
    by_name = augshift_loss(wrapped, images, layer="encoder", **seeded)
    assert torch.equal(on_wrapped, by_name)


def test_augshift_loss_is_reproducible_with_a_generator(tiny_segmenter, images):
    def loss(seed: int) -> float:
        generator = torch.Generator().manual_seed(seed)
        return augshift_loss(tiny_segmenter, images, generator=generator).item()

    assert loss(0) == loss(0)
    assert loss(0) != loss(1)


def test_augshift_loss_grows_with_the_shift(tiny_segmenter, images):
    def loss(max_shift: float) -> float:
        generator = torch.Generator().manual_seed(0)
        return augshift_loss(
            tiny_segmenter, images, max_shift=max_shift, generator=generator
        ).item()

    assert 0 < loss(0.05) < loss(0.5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_shift": -0.1}, ValueError, "max_shift"),
        ({"max_shift": 1.5}, ValueError, r"max_shift .* \[0, 1\]"),
        ({"generator": 0}, TypeError, "generator"),
        ({"layer": "nowhere"}, ValueError, "no layer 'nowhere'"),
        ({"layer": 3}, TypeError, "layer"),
    ],
)
def test_augshift_loss_rejects_bad_settings(tiny_segmenter, images, kwargs, error, match):
    with pytest.raises(error, match=match):
        augshift_loss(tiny_segmenter, images, **kwargs)
    assert no_hooks(tiny_segmenter)


def test_augshift_loss_rejects_bad_images_and_removes_its_hook_after_a_failing_model(
    tiny_segmenter,
):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        augshift_loss(tiny_segmenter, torch.full((1, 3, 16, 16), 2.0))
    with pytest.raises(RuntimeError):  # 4 channels: the first conv fails inside the forward
        augshift_loss(tiny_segmenter, torch.rand(1, 4, 16, 16))
    assert no_hooks(tiny_segmenter)


# AugShift --------------------------------------------------------------------------------------


def test_augshift_module_adds_the_weighted_penalty(tiny_segmenter, images):
    task = torch.tensor(0.7)
    total = AugShift(weight=0.5, max_shift=0.2, seed=3)(tiny_segmenter, images, task)
    penalty = augshift_loss(
        tiny_segmenter, images, max_shift=0.2, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(total, task + 0.5 * penalty)


def test_augshift_module_with_zero_weight_returns_the_task_loss(tiny_segmenter, images):
    task = torch.tensor(0.7)
    assert AugShift(weight=0)(tiny_segmenter, images, task) is task


def test_augshift_module_repr_and_errors():
    assert repr(AugShift(0.1, 0.3, "encoder")) == (
        "AugShift(weight=0.1, max_shift=0.3, layer='encoder', seed=None)"
    )
    with pytest.raises(ValueError, match="weight"):
        AugShift(weight=-1)
    with pytest.raises(ValueError, match="max_shift"):
        AugShift(max_shift=2)
    with pytest.raises(TypeError, match="seed"):
        AugShift(seed="0")


# train_segmenter(..., augshift=) ---------------------------------------------------------------


def _trained(augshift: AugShift | None) -> tuple[nn.Module, list[float]]:
    torch.manual_seed(0)
    model = TinySegmenter().eval()
    images, labels = tiny_task(8, torch.Generator().manual_seed(0))
    losses = train_segmenter(
        model, images, labels, steps=3, batch_size=4, progress=False, augshift=augshift
    )
    return model, losses


def test_training_with_augshift_changes_the_weights(caplog):
    torch.manual_seed(0)
    initial = TinySegmenter().state_dict()
    with caplog.at_level(logging.DEBUG, logger="regionattack.models.training"):
        model, losses = _trained(AugShift(weight=1.0, seed=0))
    plain, plain_losses = _trained(None)
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert not model.training  # the mode it arrived in
    weight = model.state_dict()["encoder.3.weight"]
    assert not torch.equal(weight, initial["encoder.3.weight"])
    assert not torch.equal(weight, plain.state_dict()["encoder.3.weight"])
    assert losses[0] > plain_losses[0]  # the same first batch, plus a positive penalty
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert len(steps) == 3 and "augshift term" in steps[0]
    assert any("last 3 steps" in r.getMessage() for r in caplog.records)


def test_training_rejects_an_augshift_that_is_not_callable():
    images, labels = tiny_task(4, torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="augshift"):
        train_segmenter(TinySegmenter(), images, labels, steps=1, augshift=0.1, progress=False)


# set_padding / padding_modes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def deeplab() -> nn.Module:
    torch.manual_seed(0)
    return build_model("smp:DeepLabV3:resnet18", 3).eval()


@pytest.fixture(scope="module")
def small_unet() -> nn.Module:
    name, options = SMALL_UNET
    torch.manual_seed(0)
    return build_model(name, 2, **options).eval()


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_set_padding_converts_a_copy_of_deeplabv3(deeplab, mode):
    before = snapshot(deeplab)
    padded = {n for n, m in deeplab.named_modules() if isinstance(m, nn.Conv2d) and any(m.padding)}
    converted = set_padding(deeplab, mode)
    assert converted is not deeplab and not converted.training
    assert_untouched(deeplab, before)
    assert padding_modes(deeplab) == {"zeros": len(padded)}
    assert not any(isinstance(m, PaddedConv2d) for m in deeplab.modules())
    assert padding_modes(converted) == {mode: len(padded)}
    for name, module in converted.named_modules():
        if isinstance(module, nn.Conv2d):
            assert module.padding_mode == (mode if name in padded else "zeros"), name
    assert converted.state_dict().keys() == deeplab.state_dict().keys()
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # rate-12..36 ASPP on an 8x8 map: padding larger than the input
        original, output = deeplab(images), converted(images)
    assert output.shape == original.shape
    assert not torch.allclose(output, original)


def test_set_padding_replicate_keeps_torch_convs(small_unet):
    converted = set_padding(small_unet, "replicate")
    assert set(padding_modes(converted)) == {"replicate"}
    assert not any(isinstance(m, PaddedConv2d) for m in converted.modules())
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output, original = converted(images), small_unet(images)
    assert output.shape == original.shape and not torch.allclose(output, original)


def test_set_padding_zeros_and_its_alias_undo_a_conversion(small_unet):
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    back = set_padding(set_padding(small_unet, "reflect"), "zero")
    assert padding_modes(back) == padding_modes(small_unet)
    assert not any(isinstance(m, PaddedConv2d) for m in back.modules())
    with torch.no_grad():
        assert torch.equal(back(images), small_unet(images))


def test_set_padding_refreshes_the_padding_of_convs_dilated_after_construction():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    conv.dilation, conv.padding = (2, 2), (2, 2)  # what smp's make_dilated does
    images = torch.rand(1, 2, 6, 7)
    expected = F.conv2d(
        F.pad(images, (2, 2, 2, 2), mode="replicate"), conv.weight, conv.bias, dilation=2
    )
    torch.testing.assert_close(set_padding(conv, "replicate")(images), expected)


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_padded_conv_matches_torch_where_torch_accepts_the_padding(mode):
    torch.manual_seed(0)
    reference = nn.Conv2d(2, 3, 3, padding=(1, 2), dilation=(1, 2), padding_mode=mode)
    plain = nn.Conv2d(2, 3, 3, padding=(1, 2), dilation=(1, 2))
    plain.load_state_dict(reference.state_dict())
    converted = set_padding(plain, mode)
    assert type(converted) is PaddedConv2d
    images = torch.rand(2, 2, 5, 6)
    torch.testing.assert_close(converted(images), reference(images))


@given(
    height=st.integers(1, 5),
    width=st.integers(1, 5),
    amounts=st.tuples(*[st.integers(0, 9)] * 4),
    mode=st.sampled_from(["reflect", "circular"]),
)
def test_large_paddings_follow_numpy(height, width, amounts, mode):
    images = torch.arange(height * width, dtype=torch.float32).view(1, 1, height, width)
    left, right, top, bottom = amounts
    expected = np.pad(
        images[0, 0].numpy(),
        ((top, bottom), (left, right)),
        mode="reflect" if mode == "reflect" else "wrap",
    )
    np.testing.assert_array_equal(_pad(images, amounts, mode)[0, 0].numpy(), expected)


def test_set_padding_leaves_unpadded_convs_and_wrappers_alone():
    net = with_normalization(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.Conv2d(4, 2, 1)),
        (0.5,) * 3,
        (0.5,) * 3,
    )
    converted = set_padding(net, "reflect")
    assert type(converted).__name__ == "NormalizedModel"
    inner = unwrap(converted)
    assert type(inner[0]) is PaddedConv2d and inner[0].padding_mode == "reflect"
    assert type(inner[1]) is nn.Conv2d and inner[1].padding_mode == "zeros"
    assert converted(torch.rand(1, 3, 5, 5)).shape == (1, 2, 5, 5)


def test_set_padding_errors():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match=r"one of \['zeros', 'reflect', 'replicate', 'circular'\]"):
        set_padding(conv, "mirror")
    with pytest.raises(TypeError, match="mode"):
        set_padding(conv, None)
    with pytest.raises(TypeError, match="nn.Module"):
        set_padding("model", "reflect")
    assert PADDING_MODES == ("zeros", "reflect", "replicate", "circular")


# checkpoints -----------------------------------------------------------------------------------


def _save(tmp_path: Path, padding: object) -> tuple[nn.Module, Path]:
    name, options = SMALL_UNET
    torch.manual_seed(0)
    model = build_model(name, 2, **options)
    meta = {"architecture": name, "options": options, "classes": ["a", "b"]}
    if padding is not None:
        meta["padding"] = padding
    return model, save_checkpoint(tmp_path / "model.pt", model, meta)


def test_checkpoint_round_trip_restores_the_padding(tmp_path):
    model, path = _save(tmp_path, "reflect")
    trained = set_padding(model, "reflect")
    loaded, meta = build_from_checkpoint(path)
    assert meta["padding"] == "reflect"
    assert padding_modes(loaded) == padding_modes(trained)
    assert set(padding_modes(loaded)) == {"reflect"}
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), trained.eval()(images))


@pytest.mark.parametrize("padding", [None, "zeros"])
def test_checkpoint_without_padding_is_built_as_is(tmp_path, padding):
    _, path = _save(tmp_path, padding)
    loaded, _ = build_from_checkpoint(path)
    assert set(padding_modes(loaded)) == {"zeros"}


def test_checkpoint_with_an_unknown_padding_is_refused(tmp_path):
    _, path = _save(tmp_path, "mirror")
    with pytest.raises(ValueError, match="checkpoint's 'padding'.*mirror"):
        build_from_checkpoint(path)


# benchmarks/train.py ---------------------------------------------------------------------------


@pytest.fixture
def camvid(tmp_path) -> Path:
    """Four 32x48 CamVid training images in the SegNet layout (.png labels, void = 11)."""
    rng = np.random.default_rng(0)
    (tmp_path / "train").mkdir()
    (tmp_path / "trainannot").mkdir()
    for i in range(4):
        image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / "train" / f"frame{i:02d}.jpg")
        label = np.zeros((32, 48), np.uint8)
        label[:, 24:] = 3
        label[:4] = 11
        Image.fromarray(label).save(tmp_path / "trainannot" / f"frame{i:02d}.png")
    return tmp_path


@pytest.mark.slow
def test_train_script_with_reflect_padding_and_augshift(camvid, tmp_path):
    out = tmp_path / "model.pt"
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "train.py"),
        *("--dataset", "camvid", "--root", str(camvid), "--eval-split", ""),
        *("--option", "encoder_output_stride=16", "--option", "decoder_channels=16"),
        *("--size", "32x48", "--steps", "2", "--batch-size", "2", "--device", "cpu"),
        *("--padding", "reflect", "--augshift", "0.1", "--out", str(out)),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["padding"] == "reflect"
    assert summary["augshift"] == {"weight": 0.1, "max_shift": 0.25}
    assert "augshift term" in completed.stderr
    model, meta = build_from_checkpoint(out)
    assert meta["padding"] == "reflect" and meta["augshift"]["weight"] == 0.1
    assert set(padding_modes(model)) == {"reflect"}
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 48)).shape == (1, 11, 32, 48)
