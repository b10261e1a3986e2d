"""PositionChannelAttack: the channel selections it accepts and refuses."""

import pytest
import torch

from regionattack import (
    PositionChannelAttack,
    RegionAttack,
)


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
