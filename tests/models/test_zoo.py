"""build_model: names, options, and models built from a seed or a checkpoint."""

import pytest
import torch

from regionattack.models import (
    PlantedPositionSegmenter,
    build_from_checkpoint,
    build_model,
    save_checkpoint,
)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("smp:Nope:resnet18", "Architecture one of"),
        ("smp:FPN", "Architecture one of"),
        ("smp:FPN:notanencoder", "unknown smp encoder"),
        ("torchvision:resnet50", "torchvision models are one of"),
        ("paper:deeplabv3_resnet18", "paper models are one of"),
        ("keras:FPN", "start with 'smp:', 'torchvision:', 'paper:' or 'hf:'"),
    ],
)
def test_build_model_rejects_unknown_names(name, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, num_classes=3)


def test_build_model_passes_options():
    model = build_model(
        "smp:DeepLabV3:resnet18", 4, encoder_output_stride=16, decoder_channels=32
    ).eval()
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 4, 64, 64)


@pytest.mark.parametrize(
    ("name", "option"),
    [
        ("smp:FPN:resnet18", {"decoder_dropuot": 0.9}),  # smp would build with dropout 0.2
        ("smp:DeepLabV3:resnet18", {"decoder_atention_type": "scse"}),
        ("torchvision:deeplabv3_resnet50", {"aux_los": True}),  # torchvision drops **kwargs
        ("paper:deeplabv3_resnet50", {"outputstride": 8}),
    ],
)
def test_a_misspelt_option_is_refused_naming_it(name, option):
    with pytest.raises(ValueError, match=next(iter(option))):
        build_model(name, num_classes=3, **option)


def test_a_real_option_changes_the_model():
    assert build_model("smp:FPN:resnet18", 3, decoder_dropout=0.9).decoder.dropout.p == 0.9


def test_models_built_from_a_seed_or_checkpoint_leave_the_global_rng(tmp_path):
    state = torch.get_rng_state()
    planted = PlantedPositionSegmenter(latent_channels=6, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    again = PlantedPositionSegmenter(latent_channels=6, seed=1)
    assert all(
        torch.equal(a, b) for a, b in zip(planted.parameters(), again.parameters(), strict=True)
    )
    options = {"encoder_depth": 3, "decoder_channels": [16, 8, 4]}
    net = build_model("smp:Unet:mobilenet_v2", 2, **options)
    meta = {"architecture": "smp:Unet:mobilenet_v2", "options": options, "classes": ["a", "b"]}
    path = save_checkpoint(tmp_path / "unet.pt", net, meta)
    state = torch.get_rng_state()
    loaded, _ = build_from_checkpoint(path)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(loaded.segmentation_head[0].weight, net.segmentation_head[0].weight)
