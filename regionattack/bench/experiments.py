"""The benchmark's experiments, each a pass over this process's shard of the evaluation images.

Every function returns numbers already summed over all processes (see
:class:`~regionattack.bench.distributed.Workers`), so the caller only formats and stores them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from regionattack import regions
from regionattack._checks import IGNORE_INDEX
from regionattack._state import forked_rng, frozen
from regionattack.ablation import ablate_channels, ablated_predictions
from regionattack.attacks.base import attack_with_clean
from regionattack.attacks.registry import attack_class, build_attack
from regionattack.bench.distributed import Workers
from regionattack.latent import find_layer, predict
from regionattack.metrics import (
    MaskedConfusions,
    region_specificity,
    spearman_correlation,
)
from regionattack.ranking import (
    ChannelRanking,
    channel_statistics,
    mean_weights,
    network_digest,
    pixel_loss,
    ranking_from_statistics,
)

REGION_NAMES = (*regions.NAMES, "cell")
#: Fractions of the latent channels zeroed in the ablation sweep (1, 2.5, 5, 10 and 20%).
K_FRACTIONS = (0.01, 0.025, 0.05, 0.10, 0.20)


def in_255ths(eps: float) -> float:
    """A radius in 1/255 units, rounded to 4 decimals (for labels, keys and plots).

    Example:
        >>> in_255ths(8 / 255), in_255ths(0.03)
        (8.0, 7.65)
    """
    return round(eps * 255, 4)


def radius_label(eps: float) -> str:
    """The short label of a radius in result keys and file names: its value in 1/255 units.

    Example:
        >>> radius_label(8 / 255), radius_label(0.03)
        ('8', '7.65')
    """
    return f"{in_255ths(eps):g}"


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generator for attacks that draw from it (torchattacks), then restore it.

    The caller's random state is the same after the block as before it.

    Example:
        >>> before = torch.get_rng_state()
        >>> with seeded_global_rng(0, torch.device("cpu")):
        ...     first = torch.rand(1)
        >>> with seeded_global_rng(0, torch.device("cpu")):
        ...     bool(torch.rand(1) == first)
        True
        >>> torch.equal(torch.get_rng_state(), before)
        True
    """
    with forked_rng(device):
        torch.manual_seed(seed)
        yield


def region_mask(name: str, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) mask of a named region; ``"cell"`` is the top-left quadrant (cell 0 of a 2 x 2 grid).

    Example:
        >>> region_mask("cell", (2, 2)).int().tolist()
        [[1, 0], [0, 0]]
    """
    if name == "cell":
        return regions.grid_cell(size, 2, 2, 0)
    if name not in regions.NAMES:
        raise ValueError(f"region must be one of {list(REGION_NAMES)}; got {name!r}")
    return regions.named(name, size)


def ordered_batches(dataset: Dataset, indices: Sequence[int], batch_size: int) -> DataLoader:
    """Batches of ``dataset[indices]`` in order.

    The loader gets its own generator: a DataLoader otherwise draws a seed from torch's global
    generator each time it is iterated, which would change the caller's random state.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> before = torch.get_rng_state()
        >>> [b[0].tolist() for b in ordered_batches(TensorDataset(torch.arange(5)), [0, 2, 4], 2)]
        [[0, 2], [4]]
        >>> torch.equal(torch.get_rng_state(), before)
        True
    """
    return DataLoader(Subset(dataset, indices), batch_size=batch_size, generator=torch.Generator())


@dataclass
class Setting:
    """What every experiment needs: the model, the evaluated images and the measured regions.

    ``dataset`` yields ``(image, label)`` pairs; :meth:`batches` cuts this process's shard of
    them into batches of ``batch_size``. ``masks`` maps names to (H, W) bool masks measured
    alongside all pixels (for each name ``m``, ``not-m`` is obtained as all minus ``m``, since
    confusion counts add over disjoint pixels).
    """

    model: nn.Module
    dataset: Dataset
    batch_size: int
    num_classes: int
    masks: dict[str, torch.Tensor]
    workers: Workers = field(default_factory=Workers)
    progress: bool = True

    def batches(self, limit: int | None = None) -> DataLoader:
        """This process's shard of the first ``limit`` images (all when None), in order."""
        count = len(self.dataset) if limit is None else min(limit, len(self.dataset))
        return ordered_batches(self.dataset, self.workers.shard(count), self.batch_size)

    def iterate(
        self, description: str, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This shard's batches on the device, with a progress bar on the main process."""
        for images, labels in tqdm(
            self.batches(limit),
            desc=description,
            leave=False,
            disable=not (self.progress and self.workers.is_main),
        ):
            yield images.to(self.workers.device), labels.to(self.workers.device)


def _sum_all(confusions: Sequence[MaskedConfusions], workers: Workers) -> None:
    """All-reduce many confusion stacks in one collective call."""
    if workers.world_size == 1:
        return
    stacked = workers.sum(torch.stack([c.counts for c in confusions]))
    for confusion, counts in zip(confusions, stacked, strict=True):
        confusion.counts = counts


def evaluate_clean(setting: Setting) -> MaskedConfusions:
    """Confusion matrices of the model's clean predictions."""
    confusions = MaskedConfusions(setting.num_classes, setting.masks)
    with frozen(setting.model):
        for images, labels in setting.iterate("clean"):
            confusions.update(predict(setting.model, images), labels)
    _sum_all([confusions], setting.workers)
    return confusions


def rank(
    setting: Setting,
    method: str,
    region: str | torch.Tensor | None,
    *,
    grid: int = 3,
) -> ChannelRanking:
    """A ranking over all processes' images (label-free: the model's predictions are the targets)."""
    total: torch.Tensor | None = None
    seen = 0
    for images, _ in setting.iterate(f"rank {method}"):
        batch_total, count = channel_statistics(
            setting.model, images, method=method, region=region, grid=grid
        )
        total = batch_total if total is None else total + batch_total
        seen += count
    if total is None:
        raise ValueError("no images to rank channels on")
    total = setting.workers.sum(total)
    seen = int(setting.workers.sum(torch.tensor(seen)))
    layer = find_layer(setting.model)[0]
    return ranking_from_statistics(
        total,
        seen,
        method=method,
        region=region,
        layer=layer,
        model_digest=network_digest(setting.model),
    )


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
    _sum_all(confusions, setting.workers)
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


@dataclass
class AttackOutcome:
    """Sums over an attack's images, reduced over processes."""

    clean: MaskedConfusions
    attacked: MaskedConfusions
    changed: torch.Tensor  # (2,) changed pixels inside / outside the region
    counted: torch.Tensor  # (2,) valid pixels inside / outside
    linf: float
    l2_sum: float
    images: int
    seconds: float
    examples: tuple[torch.Tensor, ...] | None  # images, labels, clean and attacked predictions


def run_attack(
    setting: Setting,
    attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    region: torch.Tensor,
    *,
    description: str,
    max_images: int | None = None,
    keep_examples: int = 4,
    seed: int = 0,
) -> AttackOutcome:
    """Attack this shard's images; sums of the metrics over all processes.

    ``region`` is the (H, W) mask the attack targets (measured as ``"region"``). The clean
    predictions are handed to the attack (``clean=``) when it takes them, so it does not compute
    them again. Each batch's attack runs with torch's global generator seeded with ``seed`` (and
    restored afterwards), so attacks that draw from it (torchattacks') repeat across runs.
    """
    masks = {"region": region}
    clean_counts = MaskedConfusions(setting.num_classes, masks)
    attacked_counts = MaskedConfusions(setting.num_classes, masks)
    changed = torch.zeros(2, dtype=torch.long)
    counted = torch.zeros(2, dtype=torch.long)
    linf, l2_sum, seen, seconds = 0.0, 0.0, 0, 0.0
    examples = None
    inside = region.to(setting.workers.device)
    for images, labels in setting.iterate(description, max_images):
        clean = predict(setting.model, images)
        with seeded_global_rng(seed, images.device):
            start = time.perf_counter()
            adversarial = attack_with_clean(attack, images, labels, clean)
            seconds += time.perf_counter() - start
        preds = predict(setting.model, adversarial)
        clean_counts.update(clean, labels)
        attacked_counts.update(preds, labels)
        valid = labels != IGNORE_INDEX
        differs = (preds != clean) & valid
        for slot, where in enumerate((inside, ~inside)):
            changed[slot] += int((differs & where).sum())
            counted[slot] += int((valid & where).sum())
        delta = (adversarial - images).flatten(1)
        linf = max(linf, float(delta.abs().max()))
        l2_sum += float(delta.norm(dim=1).sum())
        if examples is None and keep_examples:
            keep = slice(0, keep_examples)
            examples = tuple(t[keep].cpu() for t in (images, labels, clean, preds))
        seen += images.shape[0]
    workers = setting.workers
    _sum_all([clean_counts, attacked_counts], workers)
    totals = workers.sum(torch.tensor([l2_sum, float(seen), seconds], dtype=torch.float64))
    return AttackOutcome(
        clean=clean_counts,
        attacked=attacked_counts,
        changed=workers.sum(changed),
        counted=workers.sum(counted),
        linf=workers.max(linf),
        l2_sum=float(totals[0]),
        images=int(totals[1]),
        seconds=float(totals[2]),
        examples=examples,
    )


def suite_attack(
    name: str,
    model: nn.Module,
    eps: float,
    region: torch.Tensor | None,
    *,
    steps: int,
    seed: int,
    ranking: ChannelRanking | None = None,
    options: dict | None = None,
) -> nn.Module:
    """A registered attack at radius ``eps`` against ``region``, as the bench and harness run it.

    :func:`~regionattack.attacks.build_attack` with, for an attack that takes a ranking of its
    region's channels (its ``ranking_argument``), ``ranking``; ``options`` go to the constructor.

    Raises:
        ValueError: For an unknown attack or option, or a missing ranking.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> attack = suite_attack("CosPGD[apgd]", TinySegmenter(), 8 / 255, None, steps=2, seed=0)
        >>> type(attack).__name__, attack.optimizer
        ('CosPGD', 'apgd')
    """
    options = dict(options or {})
    takes = attack_class(name).ranking_argument
    if takes is not None:
        if ranking is None:
            raise ValueError(f"{name} needs the ranking of the region's channels")
        options[takes] = ranking
    return build_attack(name, model, eps=eps, steps=steps, region=region, seed=seed, **options)


def summarize_attack(outcome: AttackOutcome) -> dict[str, float]:
    """The measured numbers of an attack: mIoU inside/outside ``"region"``, drops, specificity."""
    clean_r = outcome.clean.region("region")
    attacked_r = outcome.attacked.region("region")
    changed = (outcome.changed.double() / outcome.counted.clamp_min(1).double()).tolist()
    return {
        "images": outcome.images,
        "miou": attacked_r.all,
        "miou_inside": attacked_r.inside,
        "miou_outside": attacked_r.outside,
        "clean_miou": clean_r.all,
        "clean_miou_inside": clean_r.inside,
        "clean_miou_outside": clean_r.outside,
        "drop_inside": clean_r.inside - attacked_r.inside,
        "drop_outside": clean_r.outside - attacked_r.outside,
        "specificity": region_specificity(clean_r, attacked_r),
        "changed_inside": changed[0],
        "changed_outside": changed[1],
        "linf": outcome.linf,
        "l2": outcome.l2_sum / max(outcome.images, 1),
        "seconds_per_image": outcome.seconds / max(outcome.images, 1),
    }


def ranking_fidelity(
    setting: Setting,
    rankings: dict[str, ChannelRanking],
    channels: torch.Tensor,
    *,
    grid: int = 3,
) -> dict[str, object]:
    """Measured effect of zeroing each channel alone vs what the cheap rankings predict.

    For each sampled channel ``c`` the exact change of the mean cross-entropy (w.r.t. the clean
    prediction, as the label-free rankings use) is measured in every cell of a ``grid x grid``
    lattice; ``damage`` is its mean over cells and ``position`` the standard deviation over cells of
    the image-averaged change (the quantity the overall gradient ranking estimates). Spearman
    correlations compare them with the first-order gradient estimates and the flip scores.

    Returns:
        ``{"channels", "exact_damage", "exact_position", "estimated_damage", "<ranking>_score"...,
        "spearman": {pair: rho}}``.
    """
    size = next(iter(setting.masks.values())).shape
    cells = regions.grid_cells(tuple(size), grid, grid).to(setting.workers.device)
    num_channels = next(iter(rankings.values())).num_channels
    selections = [torch.zeros(num_channels, dtype=torch.bool)] + [c.view(1) for c in channels]
    totals = torch.zeros(len(selections), cells.shape[0], dtype=torch.float64)
    estimate = None
    seen = 0
    for images, _ in setting.iterate("ranking fidelity"):
        with frozen(setting.model):
            clean = predict(setting.model, images)
        weights = mean_weights(cells[:, None], torch.ones_like(clean, dtype=torch.bool))

        def cell_losses(logits: torch.Tensor, weights=weights, clean=clean) -> torch.Tensor:
            return (pixel_loss(logits, clean) * weights).flatten(2).sum(-1).sum(-1)

        outputs = ablated_predictions(setting.model, images, selections, reduce=cell_losses)
        totals += torch.stack(outputs).double().cpu()
        whole = torch.ones(images.shape[-2:], dtype=torch.bool)
        batch_estimate, _ = channel_statistics(setting.model, images, region=whole)
        estimate = batch_estimate[0] if estimate is None else estimate + batch_estimate[0]
        seen += images.shape[0]
    totals = setting.workers.sum(totals)
    estimate = setting.workers.sum(estimate.double().cpu())
    seen = int(setting.workers.sum(torch.tensor(seen)))
    changes = (totals[1:] - totals[:1]) / seen  # (channels, cells): mean rise of CE per cell
    index = channels.long()
    result: dict[str, object] = {
        "channels": index.tolist(),
        "exact_damage": changes.mean(1).tolist(),
        "exact_position": changes.std(1, unbiased=False).tolist(),
        "estimated_damage": (estimate[index] / seen).tolist(),
    }
    spearman = {
        "gradient_estimate~exact_damage": spearman_correlation(
            torch.tensor(result["estimated_damage"]), changes.mean(1)
        )
    }
    for name, ranking in rankings.items():
        scores = ranking.scores[index]
        result[f"{name}_score"] = scores.tolist()
        spearman[f"{name}~exact_position"] = spearman_correlation(
            scores, changes.std(1, unbiased=False)
        )
        spearman[f"{name}~exact_damage"] = spearman_correlation(scores, changes.mean(1))
    result["spearman"] = spearman
    return result
