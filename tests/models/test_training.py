"""train_segmenter: it learns, restores the model's modes and leaves the global RNG alone."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from regionattack.models import (
    TinySegmenter,
    train_segmenter,
)
from tests.helpers import snapshot


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


class _Dropped(nn.Module):
    """A segmenter with dropout: its training draws from torch's global generator."""

    def __init__(self):
        super().__init__()
        self.net = TinySegmenter(num_classes=3)
        self.drop = nn.Dropout2d(0.3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.drop(self.net(images))


@pytest.mark.parametrize("data", ["tensors", "dataset"])
def test_train_segmenter_leaves_the_global_rng_and_repeats(data, generator):
    images = torch.rand(8, 3, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (8, 16, 16), generator=generator)
    source = (images, labels) if data == "tensors" else (TensorDataset(images, labels), None)
    weights = []
    for _ in range(2):
        torch.manual_seed(5)
        model = _Dropped()
        state = torch.get_rng_state()
        train_segmenter(model, *source, steps=3, batch_size=4, hflip=True, progress=False)
        assert torch.equal(torch.get_rng_state(), state)
        weights.append(model.state_dict())
    for name, value in weights[0].items():  # same global state on entry: same model
        assert torch.equal(value, weights[1][name]), name
