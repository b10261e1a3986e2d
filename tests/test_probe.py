from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from regionattack import NormalizedModel
from regionattack.models import TinySegmenter
from regionattack.probe import ProbeResult, _background, _canvases, position_readout
from tests.helpers import assert_untouched, snapshot

SIZE = 12  # canvas side; a 3x3 grid gives 4x4 cells


class RampPositionNet(nn.Module):
    """One zero-padded conv whose global average is brightness-weighted absolute position.

    The kernels span the whole (zero-padded) canvas: channels 0-3 are ramps +x, -x, +y, -y over
    the kernel offsets, so after global average pooling each equals the image's brightness times
    its centred column (row) coordinate. The pairs cancel, so the channel sum carries no position
    and a read-out that cannot tell channels apart (PermuteNet) must fall to chance. Channels 4-5
    are the pooled brightness and red, which do not depend on where the image is.
    """

    def __init__(self, size: int = SIZE):
        super().__init__()
        half = size - 1
        self.latent = nn.Conv2d(3, 6, 2 * half + 1, padding=half, bias=False)
        ramp = torch.arange(-half, half + 1, dtype=torch.float32) / half
        with torch.no_grad():
            weight = torch.zeros_like(self.latent.weight)
            weight[0] = ramp.view(1, 1, -1) / 3
            weight[1] = -weight[0]
            weight[2] = ramp.view(1, -1, 1) / 3
            weight[3] = -weight[2]
            weight[4, :, half, half] = 1 / 3
            weight[5, 0, half, half] = 1.0
            self.latent.weight.copy_(weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.latent(images)


def task(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random textures at two brightness levels; the level is the image's class."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    level = torch.tensor([0.4, 1.0])[labels].view(n, 1, 1, 1)
    texture = 0.5 + 0.5 * torch.rand(n, 3, SIZE, SIZE, generator=generator)
    return texture * level, labels


def probe(model: nn.Module, images: torch.Tensor, **kwargs) -> ProbeResult:
    """Full-batch read-outs with few epochs keep the tests fast (enough for RampPositionNet)."""
    kwargs.setdefault("layer", "latent")
    kwargs.setdefault("epochs", 50)
    kwargs.setdefault("batch_size", 512)
    return position_readout(model, images, **kwargs)


# --- canvases ---------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", [2, 3])
def test_canvas_places_image_in_its_cell(grid):
    images = torch.full((2, 3, SIZE, SIZE), 0.8)
    images[1] = 0.3
    background = torch.tensor([0.1, 0.2, 0.3])
    canvases = _canvases(images, grid, background)
    cell = SIZE // grid
    assert canvases.shape == (2 * grid * grid, 3, SIZE, SIZE)
    for n in range(2):
        for row in range(grid):
            for col in range(grid):
                canvas = canvases[n * grid * grid + row * grid + col]
                inside = torch.zeros(SIZE, SIZE, dtype=torch.bool)
                inside[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = True
                assert torch.allclose(canvas[:, inside], images[n, :, :1, :1].view(3, 1))
                assert bool((canvas[:, ~inside] == background.view(3, 1)).all())


def test_canvas_scale_centres_a_smaller_image():
    images = torch.ones(1, 1, SIZE, SIZE)
    canvases = _canvases(images, 2, torch.zeros(1), scale=2 / SIZE)  # 2x2 in 6x6 cells
    first = canvases[0, 0]
    assert torch.allclose(first[2:4, 2:4], torch.ones(2, 2))
    first[2:4, 2:4] = 0
    assert torch.equal(first, torch.zeros(SIZE, SIZE))


def test_canvas_keeps_the_image_content():
    images = torch.zeros(1, 1, 8, 8)
    images[..., :, 4:] = 1.0  # right half bright
    canvas = _canvases(images, 2, torch.zeros(1))[3, 0]  # bottom-right cell
    # the 8x8 image shrinks to 4x4 (antialiased): dark on the left, bright on the right
    assert torch.allclose(canvas[4:, 4], torch.zeros(4), atol=1e-6)
    assert torch.allclose(canvas[4:, 7], torch.ones(4))
    assert torch.equal(canvas[:4], torch.zeros(4, 8))
    assert torch.equal(canvas[:, :4], torch.zeros(8, 4))


def test_background_is_zero_after_normalisation():
    inner = nn.Identity()
    assert torch.equal(_background(inner, 3), torch.zeros(3))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    model = NormalizedModel(inner, mean, std)
    assert torch.allclose(_background(model, 3), torch.tensor(mean))
    nested = NormalizedModel(NormalizedModel(inner, (0.5,), (2.0,)), (0.25,), (0.5,))
    background = _background(nested, 1)  # ((x - 0.25) / 0.5 - 0.5) / 2 == 0
    assert torch.allclose(background, torch.tensor([0.5]))


def test_normalized_model_sees_a_zero_background():
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.latent = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, images):
            seen.append(images.clone())
            return self.latent(images)

    model = NormalizedModel(Recorder(), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    images, _ = task(4)
    probe(model, images, grid=2, epochs=2, train_fraction=0.5)
    first = seen[0][0]  # image in the top-left cell; the rest is background
    assert first[:, SIZE // 2 :, :].abs().max() < 1e-6
    assert first[:, :, SIZE // 2 :].abs().max() < 1e-6


# --- read-out ---------------------------------------------------------------------------------


def test_position_is_read_out_and_permutation_removes_it():
    model = RampPositionNet()
    images, labels = task(32)  # 16 held-out images x 9 cells: a stable permuted accuracy
    plain = probe(model, images, labels=labels, train_fraction=0.5)
    permuted = probe(model, images, labels=labels, train_fraction=0.5, permute=True)
    assert plain.chance == pytest.approx(1 / 9)
    assert plain.accuracy > plain.chance + 0.3
    assert permuted.accuracy < permuted.chance + 0.2
    # the class (brightness) survives the permutation: the channel sum still carries it
    assert plain.class_chance == permuted.class_chance == 0.5
    assert plain.class_accuracy > 0.9
    assert permuted.class_accuracy > 0.75
    assert (plain.permute, permuted.permute) == (False, True)


def test_result_fields_are_consistent():
    images, labels = task(10)
    result = probe(RampPositionNet(), images, grid=2, labels=labels, train_fraction=0.6, epochs=10)
    assert (result.grid, result.num_images, result.num_channels) == (2, 10, 6)
    assert result.confusion.dtype == torch.long and result.confusion.shape == (4, 4)
    assert result.confusion.sum(1).tolist() == [4, 4, 4, 4]  # 4 held-out images per cell
    assert result.per_cell_accuracy.shape == (4,)
    expected = result.confusion.diagonal().sum().item() / result.confusion.sum().item()
    assert result.accuracy == pytest.approx(expected)
    assert torch.allclose(result.per_cell_accuracy, result.confusion.diagonal() / 4.0)
    assert result.class_accuracy is not None
    data = json.loads(json.dumps(result.to_dict()))
    assert data["confusion"] == result.confusion.tolist()
    assert data["accuracy"] == result.accuracy


def test_without_labels_there_is_no_class_readout():
    images, _ = task(6)
    result = probe(RampPositionNet(), images, epochs=3)
    assert result.class_accuracy is None and result.class_chance is None


def test_class_ids_need_not_be_contiguous():
    images, labels = task(12)
    result = probe(RampPositionNet(), images, labels=labels * 5 + 3, epochs=20)
    assert result.class_chance == 0.5
    assert result.class_accuracy > 0.9


@pytest.mark.parametrize("permute", [False, True])
def test_same_seed_same_result(permute):
    images, labels = task(10)
    model = TinySegmenter(num_classes=2, latent_channels=8).eval()
    settings = dict(labels=labels, permute=permute, seed=3, epochs=8, batch_size=32)
    first = position_readout(model, images, **settings)
    again = position_readout(model, images, **settings)
    assert first.to_dict() == again.to_dict()


def test_model_is_left_untouched():
    model = TinySegmenter(num_classes=2, latent_channels=8).train()
    model.encoder[0].requires_grad_(False)  # a mix of frozen and trainable parameters
    # BatchNorm in training mode must not update its running stats
    before = snapshot(model)
    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    position_readout(model, images, epochs=3, permute=True)
    assert_untouched(model, before)
    with pytest.raises(ValueError, match="no layer"):
        position_readout(model, images, layer="no.such.layer")
    assert_untouched(model, before)
    wrapped = NormalizedModel(model, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    position_readout(wrapped, images, epochs=3)
    assert_untouched(model, before)


def test_global_rng_and_grad_mode_are_left_alone():
    images, _ = task(6)
    model = RampPositionNet()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with torch.no_grad():  # the read-out still trains inside a caller's no_grad block
        result = probe(model, images, epochs=3)
    assert torch.equal(torch.rand(3), expected)
    assert torch.is_grad_enabled() and 0 <= result.accuracy <= 1


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grid": 1}, "grid must be an integer >= 2"),
        ({"grid": 0}, "grid must be an integer >= 2"),
        ({"grid": 20}, "cannot fill a 20x20 grid"),
        ({"train_fraction": 1.0}, "train_fraction"),
        ({"train_fraction": 0.1}, "at least 2 images in each split"),
        ({"canvas_scale": 0.5}, "canvas_scale"),
        ({"epochs": 0}, "epochs must be positive"),
        ({"lr": 0.0}, "lr must be"),
        ({"labels": torch.zeros(6, 1, dtype=torch.long)}, r"labels must be \(N,\)"),
        ({"labels": torch.zeros(6, dtype=torch.long)}, "at least 2 classes"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    images, _ = task(6)
    with pytest.raises(ValueError, match=match):
        probe(RampPositionNet(), images, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grid": 2.0}, "grid must be an int"),
        ({"labels": torch.zeros(6)}, "integer tensor"),
        ({"labels": [0, 1, 0, 1, 0, 1]}, "labels must be a torch.Tensor"),
        ({"permute": "yes"}, "permute must be a bool"),
    ],
)
def test_bad_types_raise_type_error(kwargs, match):
    images, _ = task(6)
    with pytest.raises(TypeError, match=match):
        probe(RampPositionNet(), images, **kwargs)


def test_bad_images_raise():
    model = RampPositionNet()
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        probe(model, torch.rand(3, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        probe(model, torch.rand(6, 3, SIZE, SIZE) * 2)
    with pytest.raises(ValueError, match="at least 2 images in each split"):
        probe(model, torch.rand(3, 3, SIZE, SIZE))


# --- figure -----------------------------------------------------------------------------------


def test_plot_writes_png(tmp_path):
    images, _ = task(6)
    result = probe(RampPositionNet(), images, epochs=5)
    path = tmp_path / "probe.png"
    fig = result.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert ax.get_title().startswith("position read-out accuracy ")
    assert "(chance 0.11)" in ax.get_title()
    assert len(ax.texts) == 9


def test_plot_draws_into_given_axes():
    from matplotlib.figure import Figure

    images, _ = task(6)
    result = probe(RampPositionNet(), images, grid=2, epochs=3, train_fraction=0.5)
    fig = Figure()
    ax = fig.add_subplot()
    assert result.plot(ax=ax) is fig
    assert len(ax.texts) == 4
