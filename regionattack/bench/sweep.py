"""The ablation sweep: top-k channels of each ranking vs k random channels, every k at once."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from regionattack._state import frozen
from regionattack.ablation import ablate_channels, ablated_predictions
from regionattack.bench.setting import Setting, sum_confusions
from regionattack.latent import predict
from regionattack.metrics import MaskedConfusions
from regionattack.ranking import ChannelRanking

#: Fractions of the latent channels zeroed in the ablation sweep (1, 2.5, 5, 10 and 20%).
K_FRACTIONS = (0.01, 0.025, 0.05, 0.10, 0.20)


@dataclass(frozen=True)
class Selection:
    """One ablation configuration: which channels to zero and how it is labelled in results."""

    ranking: str
    region: str
    k: int
    seed: int | None
    channels: torch.Tensor


def ablation_ks(num_channels: int, fractions: Sequence[float] = K_FRACTIONS) -> list[int]:
    """The channel counts k of the ablation sweep: each fraction of the channels, rounded up.

    Example:
        >>> ablation_ks(512)
        [6, 13, 26, 52, 103]
    """
    return sorted({max(1, math.ceil(f * num_channels)) for f in fractions})


def channel_selections(
    rankings: Sequence[tuple[str, ChannelRanking]],
    ks: Sequence[int],
    num_channels: int,
    *,
    random_draws: int,
    seed: int,
    include_clean: bool = True,
) -> list[Selection]:
    """The ablation configurations: for each k, each ranking's top k, then k random channels.

    ``rankings`` pairs a region label (``"overall"``, ``"left"``...) with a ranking. Random draws
    come from a generator seeded with ``seed`` (draw ``d`` is labelled ``seed + d``); with
    ``include_clean`` the first selection zeroes nothing (k = 0, the clean prediction).

    Example:
        >>> ranking = ChannelRanking.from_scores(torch.tensor([0.1, 0.9, 0.5]), "flip", "overall",
        ...                                      "encoder", 4)
        >>> chosen = channel_selections([("overall", ranking)], [1], 3, random_draws=2, seed=0)
        >>> [(s.ranking, s.k, s.channels.tolist()) for s in chosen[:2]]
        [('none', 0, [False, False, False]), ('flip', 1, [1])]
        >>> len(chosen)
        4
    """
    selections = []
    if include_clean:
        selections.append(
            Selection("none", "overall", 0, None, torch.zeros(num_channels, dtype=torch.bool))
        )
    generator = torch.Generator().manual_seed(seed)
    for k in ks:
        for region, ranking in rankings:
            selections.append(Selection(ranking.method, region, k, None, ranking.top(k)))
        for draw in range(random_draws):
            channels = torch.randperm(num_channels, generator=generator)[:k]
            selections.append(Selection("random", "overall", k, seed + draw, channels))
    return selections


def ablation_sweep(
    setting: Setting, selections: Sequence[Selection], *, timing_configs: int = 4
) -> tuple[list[MaskedConfusions], dict[str, float]]:
    """Confusions for every selection, the encoder run once per batch for all of them.

    On the first batch, ``timing_configs`` selections are also run the naive way (a full forward
    per configuration) to measure the speedup of the cached latent.

    Returns:
        One :class:`MaskedConfusions` per selection, and timings (``seconds``, ``naive_seconds_per_
        config``, ``cached_seconds_per_config``, ``speedup``).
    """
    confusions = [MaskedConfusions(setting.num_classes, setting.masks) for _ in selections]
    channel_sets = [s.channels for s in selections]
    timings: dict[str, float] = {}
    timed = [s.channels for s in selections if s.k > 0][:timing_configs]
    start = time.perf_counter()
    for batch, (images, labels) in enumerate(setting.iterate("ablation sweep")):
        if batch == 0 and timed:  # after one untimed forward pass (warm-up)
            naive = _naive_seconds(setting.model, images, timed)
        mark = time.perf_counter()
        predictions = ablated_predictions(setting.model, images, channel_sets)
        cached = time.perf_counter() - mark
        for confusion, preds in zip(confusions, predictions, strict=True):
            confusion.update(preds, labels)
        if batch == 0 and timed:
            timings["naive_seconds_per_config"] = naive
            timings["cached_seconds_per_config"] = cached / len(channel_sets)
            timings["speedup"] = naive / timings["cached_seconds_per_config"]
    sum_confusions(confusions, setting.workers)
    timings["seconds"] = time.perf_counter() - start
    return confusions, timings


def _naive_seconds(model: nn.Module, images: torch.Tensor, channel_sets: list) -> float:
    """Seconds per configuration of a full forward pass with the channels zeroed."""
    with frozen(model), torch.no_grad():
        model(images)  # warm-up, not timed
        start = time.perf_counter()
        for channels in channel_sets:
            with ablate_channels(model, channels):
                predict(model, images)
    return (time.perf_counter() - start) / len(channel_sets)
