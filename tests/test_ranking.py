import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from regionattack import ChannelRanking, rank_channels, with_normalization
from regionattack._checks import state_digest
from regionattack.models import PlantedPositionSegmenter
from regionattack.ranking import (
    channel_statistics,
    flip_differences,
    gradient_effects,
    mean_weights,
    network_digest,
    ranking_from_statistics,
    region_scores,
)
from tests.helpers import assert_untouched, snapshot


@pytest.fixture
def planted():
    return PlantedPositionSegmenter(latent_channels=8).eval()


@pytest.mark.parametrize("method", ["flip", "gradient"])
def test_planted_position_channel_ranks_first(planted, generator, method):
    # Asymmetric content: flipping changes where the bright pixels are.
    images = torch.rand(8, 3, 16, 24, generator=generator)
    images[:, :, :, :8] *= 0.3
    ranking = rank_channels(planted, images, method=method)
    assert ranking.indices[0].item() == 0
    assert ranking.scores[0] > 3 * ranking.scores[1:].max()
    assert ranking.num_images == 8 and ranking.region == "overall" and ranking.layer == "encoder"


def test_flip_signed_regions(planted, generator):
    images = torch.rand(6, 3, 16, 24, generator=generator)
    images[:, :, :, 12:] *= 0.2  # bright on the left
    left = rank_channels(planted, images, method="flip", region="left")
    right = rank_channels(planted, images, method="flip", region="right")
    assert torch.allclose(left.scores, -right.scores)
    diffs = flip_differences(planted, images)
    assert torch.allclose(left.scores, diffs.mean(0), atol=1e-6)
    # The planted channel weights columns by a left-to-right ramp: bright-left content gives a
    # smaller pooled value than its mirror, so channel 0 is the most "right" channel.
    assert right.indices[0].item() == 0


def test_gradient_region_ranking_prefers_the_side_the_channel_drives(planted, generator):
    images = torch.rand(6, 3, 16, 24, generator=generator)
    right = rank_channels(planted, images, region="right")
    assert right.indices[0].item() == 0


def test_batching_and_loaders_agree(tiny_segmenter, generator):
    images = torch.rand(10, 3, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (10, 16, 16), generator=generator)
    labels[:, 0] = 255
    one = rank_channels(tiny_segmenter, images, labels=labels, region="top", batch_size=10)
    many = rank_channels(tiny_segmenter, images, labels=labels, region="top", batch_size=3)
    loader = DataLoader(TensorDataset(images, labels), batch_size=4)
    from_loader = rank_channels(tiny_segmenter, loader, region="top")
    assert torch.allclose(one.scores, many.scores, atol=1e-6)
    assert torch.allclose(one.scores, from_loader.scores, atol=1e-6)
    limited = rank_channels(tiny_segmenter, loader, region="top", max_images=5)
    assert limited.num_images == 5
    assert torch.allclose(
        limited.scores,
        rank_channels(tiny_segmenter, images[:5], labels=labels[:5], region="top").scores,
        atol=1e-6,
    )


def test_rank_channels_leaves_model_untouched(tiny_segmenter, images):
    tiny_segmenter.train()
    before = snapshot(tiny_segmenter)
    for method in ("flip", "gradient"):
        rank_channels(tiny_segmenter, images, method=method)
    rank_channels(tiny_segmenter, images, region="left")
    assert_untouched(tiny_segmenter, before)
    with pytest.raises(ValueError):
        rank_channels(tiny_segmenter, images, labels=torch.zeros(4, 15, 16, dtype=torch.long))
    assert_untouched(tiny_segmenter, before)


def test_rank_channels_errors(tiny_segmenter, images):
    with pytest.raises(ValueError, match="method must be one of"):
        rank_channels(tiny_segmenter, images, method="magic")
    with pytest.raises(ValueError, match="method='flip' ranks only"):
        rank_channels(tiny_segmenter, images, method="flip", region="center")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rank_channels(tiny_segmenter, images * 2)
    with pytest.raises(ValueError, match="NaN"):
        rank_channels(tiny_segmenter, images * float("nan"))
    with pytest.raises(ValueError, match="empty"):
        rank_channels(tiny_segmenter, images, region=torch.zeros(16, 16))
    with pytest.raises(ValueError, match="no layer"):
        rank_channels(tiny_segmenter, images, layer="nope")
    with pytest.raises(ValueError, match="no images"):
        rank_channels(tiny_segmenter, [])


def test_ranking_save_load_roundtrip(tiny_segmenter, images, tmp_path):
    ranking = rank_channels(tiny_segmenter, images, region="left")
    path = tmp_path / "ranking.json"
    ranking.save(path)
    loaded = ChannelRanking.load(path)
    assert torch.equal(loaded.indices, ranking.indices)
    assert torch.allclose(loaded.scores, ranking.scores)
    assert (loaded.method, loaded.region, loaded.layer, loaded.num_images) == (
        "gradient",
        "left",
        "encoder",
        4,
    )
    assert loaded.top(3).tolist() == ranking.indices[:3].tolist()
    with pytest.raises(ValueError, match="at most the channel count"):
        loaded.top(9)
    (tmp_path / "bad.json").write_text('{"indices": [0]}')
    with pytest.raises(ValueError, match="not a saved ChannelRanking"):
        ChannelRanking.load(tmp_path / "bad.json")


def test_per_sample_region_masks_must_match_the_images(tiny_segmenter, generator):
    images = torch.rand(8, 3, 16, 16, generator=generator)
    masks = torch.zeros(5, 16, 16, dtype=torch.bool)
    masks[:, :, :4] = True
    with pytest.raises(ValueError, match="5 masks for 8 images"):
        rank_channels(tiny_segmenter, images, region=masks, batch_size=4)
    loader = DataLoader(TensorDataset(images), batch_size=4)
    with pytest.raises(ValueError, match="an iterable"):
        rank_channels(tiny_segmenter, loader, region=masks)
    masks8 = torch.zeros(8, 16, 16, dtype=torch.bool)
    masks8[:, :, :4] = True
    masks8[4:, :, :] = ~masks8[4:, :, :]  # images 4..7 use the complement
    per_sample = rank_channels(tiny_segmenter, images, region=masks8, batch_size=4)
    weights = mean_weights(torch.stack([masks8, ~masks8]), torch.ones(8, 16, 16, dtype=torch.bool))
    effects = gradient_effects(tiny_segmenter, images, weights).mean(0)
    expected = region_scores(effects[0], effects[1])
    assert torch.allclose(per_sample.scores, expected, atol=1e-6)
    shared = rank_channels(tiny_segmenter, images, region=masks8[0])
    same = rank_channels(tiny_segmenter, images, region=masks8[0].expand(8, 16, 16))
    assert torch.allclose(shared.scores, same.scores, atol=1e-6)


# ---------------------------------------------------------------- the model a ranking was made on
def test_rankings_record_the_digest_of_the_model(tiny_segmenter, images, tmp_path):
    ranking = rank_channels(tiny_segmenter, images, method="flip")
    assert ranking.model_digest == state_digest(tiny_segmenter) == network_digest(tiny_segmenter)
    wrapped = with_normalization(tiny_segmenter, (0.5,) * 3, (0.2,) * 3)
    assert rank_channels(wrapped, images, method="flip").model_digest == ranking.model_digest
    path = tmp_path / "ranking.json"
    ranking.save(path)
    assert ChannelRanking.load(path).model_digest == ranking.model_digest
    record = json.loads(path.read_text())
    del record["model_digest"]  # a file written before the field existed
    path.write_text(json.dumps(record))
    assert ChannelRanking.load(path).model_digest is None
    total, seen = channel_statistics(tiny_segmenter, images, method="flip")
    assert ranking_from_statistics(total, seen, method="flip").model_digest is None
    digest = network_digest(tiny_segmenter)
    made = ranking_from_statistics(total, seen, method="flip", model_digest=digest)
    assert made.model_digest == digest
    with pytest.raises(TypeError, match="model_digest must be a str or None; got int"):
        ranking_from_statistics(total, seen, method="flip", model_digest=3)


GOOD = {
    "indices": [1, 2, 0],
    "scores": [0.1, 0.9, 0.5],
    "method": "flip",
    "region": "overall",
    "layer": "encoder",
    "num_images": 4,
    "model_digest": "0123456789abcdef",
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"scores": [float("nan"), 0.9, 0.5]}, "scores"),
        ({"scores": [0.1, float("inf"), 0.5]}, "scores"),
        ({"scores": [0.1, "high", 0.5]}, "scores"),
        ({"scores": [0.1, 0.9]}, "indices"),
        ({"scores": []}, "scores"),
        ({"indices": [1, 1, 0]}, "indices"),
        ({"indices": [1, 2, 3]}, "indices"),
        ({"indices": [1.0, 2.0, 0.0]}, "indices"),
        ({"indices": [0, 2, 1]}, "indices"),  # not ordered by score
        ({"indices": "120"}, "indices"),
        ({"method": 42}, "method"),
        ({"method": "magic"}, "method"),
        ({"region": None}, "region"),
        ({"layer": ""}, "layer"),
        ({"num_images": -1}, "num_images"),
        ({"num_images": 2.5}, "num_images"),
        ({"num_images": True}, "num_images"),
        ({"model_digest": 7}, "model_digest"),
        ({"model_digest": "not hex!"}, "model_digest"),
    ],
)
def test_load_rejects_malformed_rankings(tmp_path, change, field):
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps({**GOOD, **change}))
    with pytest.raises(ValueError, match=rf"ranking\.json: .*{field}"):
        ChannelRanking.load(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not a UTF-8 JSON file"),
        ("[1, 2]", "JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "layer"}), "missing.*layer"),
    ],
)
def test_load_rejects_files_that_are_not_rankings(tmp_path, text, match):
    path = tmp_path / "ranking.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"ranking\.json.*{match}"):
        ChannelRanking.load(path)


def test_load_names_the_file_of_binary_and_utf16_text(tmp_path):
    path = tmp_path / "ranking.json"
    for data in (bytes(range(256)), json.dumps(GOOD).encode("utf-16")):
        path.write_bytes(data)
        with pytest.raises(ValueError, match=r"ranking\.json is not a UTF-8 JSON file"):
            ChannelRanking.load(path)


def test_load_refuses_a_score_too_large_for_a_float(tmp_path):
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps(GOOD).replace(str(GOOD["scores"][0]), "9" * 400, 1))
    with pytest.raises(ValueError, match=r"ranking\.json: .*scores\[0\]"):
        ChannelRanking.load(path)


def test_load_accepts_a_well_formed_file(tmp_path):
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps(GOOD))
    ranking = ChannelRanking.load(path)
    assert ranking.top(3).tolist() == [1, 2, 0] and ranking.model_digest == "0123456789abcdef"


# ---------------------------------------------------------------- inputs checked before work
def test_rank_channels_refuses_labels_beyond_the_model_classes(tiny_segmenter, images):
    labels = torch.zeros(4, 16, 16, dtype=torch.long)
    labels[0, 0, 0] = 5
    before = snapshot(tiny_segmenter)
    with pytest.raises(ValueError, match="class 5 but the model predicts 3 classes"):
        rank_channels(tiny_segmenter, images, labels=labels, region="left")
    with pytest.raises(ValueError, match="class 5 but the model predicts 3 classes"):
        rank_channels(tiny_segmenter, images, labels=labels)
    assert_untouched(tiny_segmenter, before)
    labels[0, 0, 0] = 255  # ignored pixels are fine
    rank_channels(tiny_segmenter, images, labels=labels)


class _HalfSizeLogits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder = model.encoder
        self.decoder = model.decoder
        self.segmentation_head = model.segmentation_head

    def forward(self, images):
        logits = self.segmentation_head(self.decoder(self.encoder(images)))
        return logits[..., ::2, ::2]


class _Upsampled(nn.Module):
    """A model's logits upsampled bilinearly to the input by hand."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.inner(images)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


@pytest.mark.parametrize("with_labels", [False, True])
def test_rank_channels_upsamples_logits_smaller_than_the_images(
    tiny_segmenter, images, with_labels
):
    labels = torch.zeros(4, 16, 16, dtype=torch.long) if with_labels else None
    half = _HalfSizeLogits(tiny_segmenter)
    ranking = rank_channels(half, images, labels=labels, region="left")
    by_hand = rank_channels(_Upsampled(half), images, labels=labels, region="left")
    assert (ranking.layer, by_hand.layer) == ("encoder", "inner.encoder")
    assert torch.equal(ranking.scores, by_hand.scores)


def test_rank_channels_refuses_logits_larger_than_the_images(tiny_segmenter, images):
    class Doubled(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = tiny_segmenter

        def forward(self, x):
            return F.interpolate(self.model(x), scale_factor=2.0)

    with pytest.raises(ValueError, match="larger than its input"):
        rank_channels(Doubled(), images, region="left")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
@pytest.mark.parametrize("method", ["flip", "gradient"])
def test_rank_channels_converts_other_float_dtypes_to_float32(
    tiny_segmenter, images, dtype, method
):
    images = images.to(dtype)
    ranking = rank_channels(tiny_segmenter, images, method=method, region="left")
    expected = rank_channels(tiny_segmenter, images.float(), method=method, region="left")
    assert torch.equal(ranking.scores, expected.scores)


@pytest.mark.parametrize(
    ("item", "found"),
    [({"pixel_values": torch.rand(2, 3, 16, 16)}, "a dict with keys \\['pixel_values'\\]"),
     ([1, 2], "a list whose first item is int"), ("images", "str")],
)  # fmt: skip
def test_data_of_other_items_is_refused_naming_what_came(tiny_segmenter, item, found):
    with pytest.raises(TypeError, match=f"pairs of tensors; got {found}"):
        rank_channels(tiny_segmenter, [item])
