import pytest
import torch
from torch import nn

from regionattack import find_layer, latent_of, with_normalization
from regionattack.latent import default_layer, edit_latent, model_logits, select_latent
from regionattack.models import build_model

from conftest import assert_untouched, snapshot


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
