"""The ablation sweep: the k values, the channel selections, every selection's confusions."""

from contextlib import nullcontext

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from regionattack import regions
from regionattack.ablation import ablate_channels
from regionattack.bench.setting import Setting
from regionattack.bench.sweep import K_FRACTIONS, ablation_ks, ablation_sweep, channel_selections
from regionattack.metrics import MaskedConfusions
from regionattack.ranking import ChannelRanking
from tests.helpers import assert_untouched, snapshot, tiny_task


def ranking(method, scores):
    return ChannelRanking.from_scores(torch.tensor(scores), method, "overall", "encoder", 4)


# ---------------------------------------------------------------- ablation_ks
def test_the_default_fractions_are_one_to_twenty_percent():
    assert K_FRACTIONS == (0.01, 0.025, 0.05, 0.10, 0.20)
    assert ablation_ks(2048) == [21, 52, 103, 205, 410]
    assert ablation_ks(8) == [1, 2]  # 0.08, 0.2, 0.4 and 0.8 all round up to 1
    assert ablation_ks(100, (0.5, 0.1, 0.5, 0.001)) == [1, 10, 50]


@given(channels=st.integers(1, 4096), fractions=st.lists(st.floats(0.0, 1.0), min_size=1))
def test_each_k_is_a_fraction_rounded_up_sorted_and_distinct(channels, fractions):
    ks = ablation_ks(channels, fractions)
    assert ks == sorted(set(ks)) and all(1 <= k <= channels for k in ks)
    for fraction in fractions:
        assert any(fraction * channels <= k < fraction * channels + 1 or k == 1 for k in ks)


# ---------------------------------------------------------------- channel_selections
def test_selections_are_clean_then_for_each_k_the_rankings_then_random_draws():
    rankings = [
        ("overall", ranking("flip", [0.1, 0.9, 0.5, 0.3, 0.0, 0.2])),
        ("left", ranking("gradient", [0.6, 0.1, 0.2, 0.3, 0.9, 0.0])),
    ]
    chosen = channel_selections(rankings, [1, 3], 6, random_draws=2, seed=7)
    labels = [(s.ranking, s.region, s.k, s.seed) for s in chosen]
    assert labels == [("none", "overall", 0, None)] + [
        entry
        for k in (1, 3)
        for entry in (
            ("flip", "overall", k, None),
            ("gradient", "left", k, None),
            ("random", "overall", k, 7),
            ("random", "overall", k, 8),
        )
    ]
    clean = chosen[0].channels
    assert clean.dtype == torch.bool and clean.shape == (6,) and not clean.any()
    assert chosen[1].channels.tolist() == [1] and chosen[6].channels.tolist() == [4, 0, 3]
    for selection in chosen[1:]:
        channels = selection.channels.tolist()
        assert len(channels) == len(set(channels)) == selection.k
        assert all(0 <= c < 6 for c in channels)


def test_random_draws_repeat_for_a_seed_and_change_with_it():
    def draws(seed):
        chosen = channel_selections([], [2, 4], 50, random_draws=3, seed=seed)
        return [s.channels.tolist() for s in chosen if s.ranking == "random"]

    assert draws(0) == draws(0)
    assert draws(0) != draws(1)
    assert len({tuple(d) for d in draws(0)}) == 6  # the draws differ from each other


def test_the_clean_selection_can_be_left_out():
    chosen = channel_selections([], [1, 2], 4, random_draws=1, seed=0, include_clean=False)
    assert [(s.ranking, s.k) for s in chosen] == [("random", 1), ("random", 2)]
    assert channel_selections([], [1], 4, random_draws=0, seed=0, include_clean=False) == []


# ---------------------------------------------------------------- ablation_sweep
@pytest.fixture
def setting(tiny_segmenter):
    images, labels = tiny_task(5, torch.Generator().manual_seed(2))
    labels[:, 0] = 255
    masks = {"left": regions.named("left", (16, 16))}
    return Setting(tiny_segmenter, TensorDataset(images, labels), 2, 3, masks, progress=False)


def test_the_sweep_gives_each_selection_the_confusions_of_a_full_forward(setting):
    selections = channel_selections(
        [("overall", ranking("flip", [0.8, 0.1, 0.7, 0.2, 0.3, 0.4, 0.5, 0.6]))],
        [1, 4],
        8,
        random_draws=1,
        seed=0,
    )
    model = setting.model.train()
    before = snapshot(model)
    confusions, timings = ablation_sweep(setting, selections, timing_configs=2)
    assert_untouched(model, before)
    assert len(confusions) == len(selections) == 5
    images, labels = setting.dataset.tensors
    for selection, result in zip(selections, confusions, strict=True):
        expected = MaskedConfusions(3, setting.masks)
        zeroed = ablate_channels(model, selection.channels) if selection.k else nullcontext()
        with torch.no_grad(), zeroed:
            expected.update(model.eval()(images).argmax(1), labels)
        model.train()
        assert torch.equal(result.counts, expected.counts), (selection.ranking, selection.k)
    assert not torch.equal(confusions[0].counts, confusions[2].counts)  # zeroing 4 channels shows
    assert timings.keys() == {
        "seconds",
        "naive_seconds_per_config",
        "cached_seconds_per_config",
        "speedup",
    }
    assert timings["speedup"] == pytest.approx(
        timings["naive_seconds_per_config"] / timings["cached_seconds_per_config"]
    )
    assert all(value > 0 for value in timings.values())


def test_a_sweep_with_nothing_zeroed_is_not_timed_against_the_naive_way(setting):
    clean_only = channel_selections([], [], 8, random_draws=0, seed=0)
    confusions, timings = ablation_sweep(setting, clean_only)
    assert list(timings) == ["seconds"]
    assert int(confusions[0].counts[0].sum()) == 5 * 15 * 16  # all valid pixels counted once
