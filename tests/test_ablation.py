import numpy as np
import pytest
import torch

from regionattack import ChannelAblation, ablate_channels, rank_channels
from regionattack.ablation import ablate, ablated_predictions, channel_mask
from tests.helpers import assert_untouched, snapshot


def _decode(model, latent):
    return model.segmentation_head(model.decoder(latent))


@pytest.mark.parametrize("mode", ["zero", "mean", "noise"])
def test_ablation_modes_match_direct_edit(tiny_segmenter, images, mode):
    latent = tiny_segmenter.encoder(images)
    with ablate_channels(tiny_segmenter, [1, 3], mode=mode, std=0.5, seed=0):
        out = tiny_segmenter(images)
    generator = torch.Generator().manual_seed(0)
    edited = ablate(latent, channel_mask([1, 3], 8), mode, 0.5, generator)
    assert torch.allclose(out, _decode(tiny_segmenter, edited), atol=1e-6)
    untouched = [c for c in range(8) if c not in (1, 3)]
    assert torch.equal(edited[:, untouched], latent[:, untouched])
    if mode == "zero":
        assert edited[:, [1, 3]].abs().sum() == 0
    if mode == "mean":
        assert torch.allclose(edited[:, 1].mean((1, 2)), latent[:, 1].mean((1, 2)), atol=1e-6)
        assert edited[:, 1].std((1, 2)).max() < 1e-6


def test_per_sample_channels(tiny_segmenter, images):
    per_sample = torch.tensor([[0], [1], [2], [3]])
    with ablate_channels(tiny_segmenter, per_sample):
        out = tiny_segmenter(images)
    for i in range(4):
        with ablate_channels(tiny_segmenter, [i]):
            alone = tiny_segmenter(images[i : i + 1])
        assert torch.allclose(out[i : i + 1], alone, atol=1e-5)


def test_channel_ablation_module_and_ranking(tiny_segmenter, images):
    ranking = rank_channels(tiny_segmenter, images)
    module = ChannelAblation(tiny_segmenter, ranking.top(2))
    with ablate_channels(tiny_segmenter, ranking.top(2)):
        expected = tiny_segmenter(images)
    assert torch.allclose(module(images), expected)
    assert "mode='zero'" in repr(module)
    with pytest.raises(TypeError, match=r"ranking\.top\(k\)"):
        ChannelAblation(tiny_segmenter, ranking)


def test_hooks_removed_after_normal_and_failing_calls(tiny_segmenter, images):
    before = snapshot(tiny_segmenter)
    with ablate_channels(tiny_segmenter, [0]):
        tiny_segmenter(images)
    with pytest.raises(ValueError, match=r"channel ids must lie in \[0, 8\)"):
        with ablate_channels(tiny_segmenter, [8]):
            tiny_segmenter(images)
    with pytest.raises(ValueError, match="batch has 4"):
        ChannelAblation(tiny_segmenter, torch.tensor([[0], [1]]))(images)
    assert_untouched(tiny_segmenter, before)


def test_channel_mask_errors():
    with pytest.raises(TypeError, match="integers"):
        channel_mask(torch.tensor([0.5]), 4)
    with pytest.raises(ValueError, match="non-empty"):
        channel_mask([], 4)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        channel_mask([-1], 4)
    with pytest.raises(ValueError, match="mode must be one of"):
        with ablate_channels(torch.nn.Identity(), [0], mode="drop", layer=None):
            pass
    assert channel_mask(torch.tensor([True, False, True, False]), 4).tolist() == [
        [True, False, True, False]
    ]


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablated_predictions_match_the_hooked_forward(tiny_segmenter, images, mode):
    tiny_segmenter.train()
    before = snapshot(tiny_segmenter)
    selections = [[0], [1, 2, 3], torch.tensor([[0], [1], [2], [3]])]
    fast = ablated_predictions(tiny_segmenter, images, selections, mode=mode)
    assert_untouched(tiny_segmenter, before)
    tiny_segmenter.eval()
    for selection, prediction in zip(selections, fast, strict=True):
        with ablate_channels(tiny_segmenter, selection, mode=mode), torch.no_grad():
            assert torch.equal(prediction, tiny_segmenter(images).argmax(1))


def test_ablated_predictions_restore_the_layer_after_an_error(tiny_segmenter, images):
    before = snapshot(tiny_segmenter)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        ablated_predictions(tiny_segmenter, images, [[0], [99]])
    calls = []

    def fail_on_second(*_):
        calls.append(1)
        if len(calls) == 2:  # the first decoder run is on the replayed latent
            raise RuntimeError("decoder failed")

    handle = tiny_segmenter.decoder.register_forward_pre_hook(fail_on_second)
    try:
        with pytest.raises(RuntimeError, match="decoder failed"):
            ablated_predictions(tiny_segmenter, images, [[0], [1]])
    finally:
        handle.remove()
    assert "forward" not in tiny_segmenter.encoder.__dict__
    assert_untouched(tiny_segmenter, before)


@pytest.mark.parametrize(
    "channels",
    ["abc", b"ab", [0.5], [[0, 1], [2]], {0, 1}, [0, "1"], None, 3],
    ids=["str", "bytes", "floats", "ragged", "set", "mixed", "none", "int"],
)
def test_channel_specs_of_the_wrong_type_are_refused_on_entry(tiny_segmenter, channels):
    with pytest.raises(TypeError, match="channel"):
        with ablate_channels(tiny_segmenter, channels):
            pass
    with pytest.raises(TypeError, match="channel"):
        ChannelAblation(tiny_segmenter, channels)
    with pytest.raises(TypeError, match="channel"):
        channel_mask(channels, 8)


@pytest.mark.parametrize(
    "channels",
    [[], torch.zeros(8, dtype=torch.bool), torch.zeros(2, 0, dtype=torch.long), [-1], [[0], [-2]]],
)
def test_empty_or_negative_channel_specs_are_refused_on_entry(tiny_segmenter, channels):
    with pytest.raises(ValueError, match="select no channel|non-empty|>= 0"):
        with ablate_channels(tiny_segmenter, channels):
            pass
    with pytest.raises(ValueError, match="select no channel|non-empty|>= 0"):
        ChannelAblation(tiny_segmenter, channels)


def test_channel_mask_refuses_a_sample_with_no_channel():
    mask = torch.tensor([[True, False], [False, False]])
    with pytest.raises(ValueError, match=r"select no channel for sample\(s\) \[1\]"):
        channel_mask(mask, 2)
    assert channel_mask(np.array([1, 3]), 4).tolist() == [[False, True, False, True]]


@pytest.mark.parametrize(("seed", "error"), [("a", TypeError), (True, TypeError), (1.5, TypeError)])
def test_noise_seed_must_be_an_int_or_none(tiny_segmenter, seed, error):
    with pytest.raises(error, match="seed must be an int or None"):
        with ablate_channels(tiny_segmenter, [0], mode="noise", seed=seed):
            pass
    with pytest.raises(error, match="seed must be an int or None"):
        ChannelAblation(tiny_segmenter, [0], mode="noise", seed=seed)


def test_an_all_false_mask_in_a_sweep_zeroes_nothing(tiny_segmenter, images):
    nothing = torch.zeros(8, dtype=torch.bool)
    (clean,) = ablated_predictions(tiny_segmenter, images, [nothing])
    with torch.no_grad():
        assert torch.equal(clean, tiny_segmenter(images).argmax(1))
    with pytest.raises(ValueError, match="select no channel"):
        with ablate_channels(tiny_segmenter, nothing):
            pass
