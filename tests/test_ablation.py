import pytest
import torch

from regionattack import ChannelAblation, ablate_channels, rank_channels
from regionattack.ablation import ablate, ablated_predictions, channel_mask

from conftest import assert_untouched, snapshot


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
