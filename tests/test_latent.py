import copy

import pytest
import torch
from torch import nn

from regionattack import find_layer, latent_of, with_normalization
from regionattack.latent import default_layer, edit_latent, model_logits, select_latent
from regionattack.models import TinySegmenter, build_model
from tests.helpers import assert_untouched, snapshot


@pytest.mark.parametrize(
    ("name", "layer", "channels"),
    [
        ("smp:FPN:resnet18", "encoder", 512),
        ("smp:DeepLabV3:resnet18", "encoder", 512),
        ("torchvision:lraspp_mobilenet_v3_large", "backbone", 960),
        ("torchvision:deeplabv3_mobilenet_v3_large", "backbone", 960),
    ],
)
def test_default_latent_of_known_architectures(name, layer, channels):
    model = build_model(name, num_classes=3).eval()
    assert default_layer(model) == layer
    wrapped = with_normalization(model, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
    assert find_layer(wrapped)[0] == layer
    latent = latent_of(wrapped, torch.rand(1, 3, 64, 64))
    assert latent.shape[:2] == (1, channels)
    logits = model_logits(wrapped(torch.rand(1, 3, 64, 64)))
    assert logits.shape == (1, 3, 64, 64)


def test_unknown_layer_lists_candidates(tiny_segmenter):
    with pytest.raises(ValueError, match=r"no layer 'encoder\.9'.*candidates.*'encoder\.0'"):
        find_layer(tiny_segmenter, "encoder.9")
    with pytest.raises(ValueError, match="cannot tell the latent layer"):
        find_layer(nn.Sequential(nn.Conv2d(3, 3, 1)))


def test_latent_of_stops_before_the_decoder(tiny_segmenter, images):
    calls = []
    handle = tiny_segmenter.decoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        latent = latent_of(tiny_segmenter, images)
    finally:
        handle.remove()
    assert calls == [] and latent.shape == (4, 8, 4, 4)
    assert torch.allclose(latent, tiny_segmenter.encoder(images))


def test_edit_latent_replaces_and_removes_hook_on_error(tiny_segmenter, images):
    before = snapshot(tiny_segmenter)
    with edit_latent(tiny_segmenter, torch.zeros_like):
        zeroed = tiny_segmenter(images)
    expected = tiny_segmenter.segmentation_head(
        tiny_segmenter.decoder(torch.zeros_like(tiny_segmenter.encoder(images)))
    )
    assert torch.allclose(zeroed, expected)
    with pytest.raises(RuntimeError, match="boom"), edit_latent(tiny_segmenter, torch.zeros_like):
        raise RuntimeError("boom")
    assert_untouched(tiny_segmenter, before)


def test_select_latent_structures():
    z = torch.ones(1, 2, 3, 3)
    assert select_latent([torch.zeros(1), z]) is z
    assert select_latent({"out": z}) is z
    with pytest.raises(TypeError, match="dict with 'out'"):
        select_latent({"aux": z})
    with pytest.raises(ValueError, match=r"\(N, K, h, w\)"):
        select_latent(torch.ones(2, 3))
    with pytest.raises(ValueError, match="logits"):
        model_logits(torch.ones(2, 3))


class _Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


class _WithSpare(nn.Module):
    """Batch norm that runs, and a layer that never does."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.spare = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_latent_of_in_training_mode_leaves_buffers_and_flags(tiny_segmenter, images):
    model = tiny_segmenter.train()
    model.decoder.eval()  # a mixed state that must survive
    before = snapshot(model)
    latent = latent_of(model, images)
    assert_untouched(model, before)
    # the forward ran in training mode: batch norm used the batch's own statistics
    expected = copy.deepcopy(model).encoder(images)
    assert torch.allclose(latent, expected)
    latent.square().sum().backward()  # gradients still reach the parameters
    assert model.encoder[0].weight.grad is not None


@pytest.mark.parametrize(
    ("model", "layer", "match"),
    [
        (
            nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), _Boom(), nn.Conv2d(4, 4, 1)),
            "3",
            "boom",
        ),
        (_WithSpare(), "spare", "was not run"),
    ],
)
def test_latent_of_failing_in_training_mode_leaves_buffers(model, layer, match, images):
    model.train()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match=match):
        latent_of(model, images, layer)
    assert_untouched(model, before)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        latent_of(model, images, "nope")
    assert_untouched(model, before)


class _UserWrapper(nn.Module):
    """What a user writes: normalisation in forward around a segmentation model."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))

    def forward(self, images: torch.Tensor):
        return self.net((images - self.mean) / 0.25)


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("tiny", "encoder"),
        ("smp:FPN:resnet18", "encoder"),
        ("torchvision:lraspp_mobilenet_v3_large", "backbone"),
    ],
)
def test_latent_is_found_inside_a_users_wrapper(name, layer):
    model = TinySegmenter() if name == "tiny" else build_model(name, num_classes=3)
    model.eval()
    wrapped = _UserWrapper(model)
    module = find_layer(model)[1]
    assert find_layer(wrapped) == (f"net.{layer}", module)
    assert default_layer(wrapped) == f"net.{layer}"
    assert find_layer(wrapped, f"net.{layer}")[1] is module  # the name resolves again
    # NormalizedModel wrappers keep names relative to the model they wrap
    assert find_layer(with_normalization(wrapped, (0.5,) * 3, (0.2,) * 3))[0] == f"net.{layer}"
    assert find_layer(_UserWrapper(with_normalization(model, (0.5,) * 3, (0.2,) * 3)))[0] == (
        f"net.model.{layer}"
    )
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(latent_of(wrapped, x), latent_of(model, (x - 0.5) / 0.25))


def test_several_segmentation_models_inside_need_layer(images):
    ensemble = nn.ModuleDict({"a": TinySegmenter(), "b": nn.Sequential(TinySegmenter())})
    with pytest.raises(ValueError, match=r"2 segmentation models.*\['a', 'b\.0'\].*layer="):
        find_layer(ensemble)
    assert find_layer(ensemble, "b.0.encoder")[1] is ensemble["b"][0].encoder


def test_model_without_a_known_latent_mentions_layer():
    with pytest.raises(ValueError, match=r"cannot tell the latent layer of Sequential.*layer="):
        find_layer(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sequential(nn.ReLU())))


def test_model_logits_reads_logits_outputs_and_upsamples_smaller_logits():
    small = torch.randn(2, 3, 4, 6)
    assert torch.equal(model_logits({"logits": small}), small)

    class Output:  # an output object with a .logits attribute
        logits = small

    up = model_logits(Output(), (8, 12))
    expected = torch.nn.functional.interpolate(small, size=(8, 12), mode="bilinear")
    assert torch.equal(up, expected)
    assert model_logits(small, (4, 6)) is small  # already at the size: untouched
    with pytest.raises(ValueError, match="larger than its input"):
        model_logits(small, (2, 12))


def test_a_tuple_output_with_the_logits_second_is_refused_pointing_to_them():
    from regionattack.latent import model_logits

    with pytest.raises(
        ValueError, match="logits first; got Tensor of shape \\(2,\\) first; item 1"
    ):
        model_logits((torch.zeros(2), torch.zeros(1, 3, 4, 4)))
    with pytest.raises(ValueError, match="must return \\(N, K, H, W\\) logits"):
        model_logits(torch.zeros(3))
    assert model_logits((torch.zeros(1, 3, 4, 4), torch.zeros(2))).shape == (1, 3, 4, 4)


def test_latent_of_computes_in_the_models_dtype_and_refuses_half_models():
    model = TinySegmenter().eval()
    images = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(
        latent_of(model, images.half()), latent_of(model, images.half().float())
    )
    with pytest.raises(ValueError, match="torch.float16.*model.float()"):
        latent_of(model.half(), images)
