"""Channel rankings over the bench's images, and their fidelity to what zeroing a channel does."""

import pytest
import torch
from torch.utils.data import TensorDataset

from regionattack import rank_channels, regions
from regionattack.ablation import ablate_channels
from regionattack.bench.rankings import rank, ranking_fidelity
from regionattack.bench.setting import Setting
from regionattack.metrics import spearman_correlation
from regionattack.ranking import network_digest, pixel_loss
from tests.helpers import assert_untouched, snapshot, tiny_task

CHANNELS = torch.tensor([0, 3, 5, 6])


@pytest.fixture
def images():
    return tiny_task(5, torch.Generator().manual_seed(4))[0]


def setting_of(model, images, batch_size=2):
    labels = torch.zeros(images.shape[0], 16, 16, dtype=torch.long)  # rankings do not read them
    masks = {"left": regions.named("left", (16, 16))}
    return Setting(model, TensorDataset(images, labels), batch_size, 3, masks, progress=False)


@pytest.mark.parametrize(
    ("method", "region"), [("flip", None), ("gradient", "left"), ("gradient", None)]
)
def test_rank_equals_rank_channels_on_all_the_images(tiny_segmenter, images, method, region):
    model = tiny_segmenter.train()
    before = snapshot(model)
    ranking = rank(setting_of(model, images), method, region)
    assert_untouched(model, before)
    expected = rank_channels(model, images, method=method, region=region)
    torch.testing.assert_close(ranking.scores, expected.scores, rtol=1e-5, atol=1e-7)
    assert (ranking.method, ranking.region, ranking.layer) == (method, expected.region, "encoder")
    assert ranking.num_images == 5 and ranking.model_digest == network_digest(model)


def test_the_overall_gradient_ranking_uses_the_grid(tiny_segmenter, images):
    setting = setting_of(tiny_segmenter, images)
    coarse, fine = rank(setting, "gradient", None, grid=2), rank(setting, "gradient", None)
    expected = rank_channels(tiny_segmenter, images, method="gradient", grid=2)
    torch.testing.assert_close(coarse.scores, expected.scores, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(coarse.scores, fine.scores)


def test_ranking_without_images_is_refused(tiny_segmenter):
    empty = setting_of(tiny_segmenter, torch.zeros(0, 3, 16, 16))
    with pytest.raises(ValueError, match="no images to rank channels on"):
        rank(empty, "flip", None)


def measured_changes(model, images, channels, grid=3):
    """(channels, cells) mean rise of the cross-entropy w.r.t. the clean prediction, per cell."""
    cells = regions.grid_cells((16, 16), grid, grid)
    with torch.no_grad():
        model.eval()
        clean_logits = model(images)
        clean = clean_logits.argmax(1)

        def per_cell(logits):
            loss = pixel_loss(logits, clean)  # (N, H, W)
            return torch.stack([loss[:, cell].mean(1) for cell in cells], 1).mean(0)

        changes = []
        for channel in channels.tolist():
            with ablate_channels(model, [channel]):
                changes.append(per_cell(model(images)) - per_cell(clean_logits))
    return torch.stack(changes).double()


def test_fidelity_measures_the_effect_of_zeroing_each_channel(tiny_segmenter, images):
    setting = setting_of(tiny_segmenter, images)
    rankings = {"flip": rank(setting, "flip", None), "gradient": rank(setting, "gradient", None)}
    model = tiny_segmenter.train()
    before = snapshot(model)
    result = ranking_fidelity(setting, rankings, CHANNELS)
    assert_untouched(model, before)
    changes = measured_changes(model, images, CHANNELS)
    assert float(changes.abs().max()) > 1e-2  # zeroing these channels does change the losses
    assert result["channels"] == CHANNELS.tolist()
    assert result["exact_damage"] == pytest.approx(changes.mean(1).tolist(), rel=1e-4, abs=1e-6)
    assert result["exact_position"] == pytest.approx(
        changes.std(1, unbiased=False).tolist(), rel=1e-4, abs=1e-6
    )
    for name, ranking in rankings.items():
        assert result[f"{name}_score"] == ranking.scores[CHANNELS].tolist()
    assert len(result["estimated_damage"]) == len(CHANNELS)
    spearman = result["spearman"]
    assert set(spearman) == {
        "gradient_estimate~exact_damage",
        "flip~exact_position",
        "flip~exact_damage",
        "gradient~exact_position",
        "gradient~exact_damage",
    }
    assert spearman["flip~exact_position"] == pytest.approx(
        spearman_correlation(torch.tensor(result["flip_score"]), changes.std(1, unbiased=False))
    )
    assert spearman["gradient_estimate~exact_damage"] == pytest.approx(
        spearman_correlation(torch.tensor(result["estimated_damage"]), changes.mean(1))
    )


def test_fidelity_does_not_depend_on_the_batch_size(tiny_segmenter, images):
    setting = setting_of(tiny_segmenter, images)
    rankings = {"gradient": rank(setting, "gradient", None)}
    apart = ranking_fidelity(setting_of(tiny_segmenter, images, batch_size=2), rankings, CHANNELS)
    whole = ranking_fidelity(setting_of(tiny_segmenter, images, batch_size=5), rankings, CHANNELS)
    for key in ("exact_damage", "exact_position", "estimated_damage"):
        assert apart[key] == pytest.approx(whole[key], rel=1e-4, abs=1e-6), key
