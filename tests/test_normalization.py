import pytest
import torch
from torch import nn

from regionattack import find_layer, rank_channels, with_normalization
from regionattack.normalization import NormalizedModel, unwrap


def test_normalization_is_applied_and_seen_through(tiny_segmenter, images):
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    wrapped = with_normalization(tiny_segmenter, mean, std)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(wrapped(images), tiny_segmenter((images - m) / s))
    assert unwrap(with_normalization(wrapped, (0.0,) * 3, (1.0,) * 3)) is tiny_segmenter
    assert find_layer(wrapped, "encoder.0")[1] is tiny_segmenter.encoder[0]
    ranking = rank_channels(wrapped, images)
    assert ranking.layer == "encoder" and ranking.num_channels == 8


def test_normalization_errors():
    with pytest.raises(ValueError, match="one value per channel"):
        NormalizedModel(nn.Identity(), (0.5, 0.5), (0.2,))
    with pytest.raises(ValueError, match="positive"):
        NormalizedModel(nn.Identity(), (0.5,), (0.0,))
    with pytest.raises(TypeError, match="nn.Module"):
        NormalizedModel(lambda x: x, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="channels"):
        NormalizedModel(nn.Identity(), (0.5,), (0.5,))(torch.zeros(1, 3, 2, 2))
