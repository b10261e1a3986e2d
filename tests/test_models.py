import pytest
import torch

from regionattack.models import TinySegmenter, build_model, train_segmenter

from conftest import snapshot


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("smp:Nope:resnet18", "Architecture one of"),
        ("smp:FPN", "Architecture one of"),
        ("smp:FPN:notanencoder", "unknown smp encoder"),
        ("torchvision:resnet50", "torchvision models are one of"),
        ("paper:deeplabv3_resnet18", "paper models are one of"),
        ("keras:FPN", "start with 'smp:', 'torchvision:' or 'paper:'"),
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


def test_train_segmenter_learns_and_restores_modes(generator):
    torch.manual_seed(0)
    model = TinySegmenter(num_classes=2)
    model.eval()
    model.encoder[1].train()  # a mixed state that must survive
    images = torch.rand(16, 3, 16, 16, generator=generator)
    labels = (images.mean(1) > 0.5).long()
    labels[:, 0] = 255
    before = snapshot(model)
    losses = train_segmenter(model, images, labels, steps=40, batch_size=8, lr=1e-2, progress=False)
    assert losses[-1] < losses[0]
    assert snapshot(model)["training"] == before["training"]
    with pytest.raises(ValueError, match="labels"):
        train_segmenter(model, images, labels[:, :8], steps=1, progress=False)
