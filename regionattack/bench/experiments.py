"""The benchmark's experiments, each a pass over this process's shard of the evaluation images.

Every function returns numbers already summed over all processes (see
:class:`~regionattack.bench.distributed.Workers`), so the caller only formats and stores them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from regionattack import regions
from regionattack._checks import IGNORE_INDEX
from regionattack._state import frozen
from regionattack.ablation import ablate_channels, ablated_predictions
from regionattack.bench.distributed import Workers
from regionattack.latent import find_layer, predicted_classes
from regionattack.metrics import (
    ConfusionMatrix,
    RegionMIoU,
    region_specificity,
    spearman_correlation,
)
from regionattack.ranking import (
    ChannelRanking,
    channel_statistics,
    mean_weights,
    pixel_loss,
    ranking_from_statistics,
)

Batches = Callable[[int | None], Iterable[tuple[torch.Tensor, torch.Tensor]]]


REGION_NAMES = (*regions.NAMES, "cell")
ATTACKS = ("RegionAttack", "PositionChannelAttack", "RegionPGD", "SegPGD", "CosPGD", "PGD")


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


@dataclass
class Setting:
    """What every experiment needs: the model, this process's batches and the measured regions.

    ``batches(limit)`` yields ``(images, labels)`` of this process's shard of the first ``limit``
    images (all when None; a fresh pass each call);
    ``masks`` maps names to (H, W) bool masks measured alongside all pixels (for each name ``m``,
    ``not-m`` is obtained as all minus ``m``, since confusion counts add over disjoint pixels).
    """

    model: nn.Module
    batches: Batches
    num_classes: int
    masks: dict[str, torch.Tensor]
    workers: Workers = field(default_factory=Workers)
    progress: bool = True

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


class MaskedConfusions:
    """Confusion matrices of one prediction stream on all pixels and inside named masks.

    Example:
        >>> masks = {"left": regions.named("left", (2, 2))}
        >>> counts = MaskedConfusions(2, masks)
        >>> target = torch.tensor([[[0, 1], [0, 1]]])
        >>> counts.update(target, target)
        >>> {name: round(value, 2) for name, value in counts.mious().items()}
        {'all': 1.0, 'left': 1.0, 'not-left': 1.0}
    """

    def __init__(self, num_classes: int, masks: dict[str, torch.Tensor]):
        self.num_classes = num_classes
        self.names = ["all", *masks]
        self.masks = [None, *masks.values()]
        self.counts = torch.zeros(len(self.names), num_classes, num_classes, dtype=torch.long)

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> None:
        """Count a batch of (N, H, W) predictions against targets (255 ignored)."""
        for index, mask in enumerate(self.masks):
            batch = ConfusionMatrix(self.num_classes)
            batch.update(preds, targets, mask)
            self.counts[index] += batch.matrix

    def matrix(self, name: str) -> ConfusionMatrix:
        """The confusion matrix of ``name``, ``"all"`` or ``"not-<mask>"``."""
        matrix = ConfusionMatrix(self.num_classes)
        if name.startswith("not-"):
            matrix.matrix = self.counts[0] - self.counts[self.names.index(name[4:])]
        else:
            matrix.matrix = self.counts[self.names.index(name)].clone()
        return matrix

    def mious(self) -> dict[str, float]:
        """MIoU of all pixels, of each mask and of each mask's complement."""
        names = self.names + [f"not-{name}" for name in self.names[1:]]
        return {name: self.matrix(name).miou() for name in names}

    def reduce(self, workers: Workers) -> MaskedConfusions:
        """Sum the counts over all processes (in place); return self."""
        self.counts = workers.sum(self.counts)
        return self


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
    with frozen(setting.model), torch.no_grad():
        for images, labels in setting.iterate("clean"):
            confusions.update(predicted_classes(setting.model(images)), labels)
    return confusions.reduce(setting.workers)


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
    return ranking_from_statistics(total, seen, method=method, region=region, layer=layer)


@dataclass(frozen=True)
class Selection:
    """One ablation configuration: which channels to zero and how it is labelled in results."""

    ranking: str
    region: str
    k: int
    seed: int | None
    channels: torch.Tensor


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
    start = time.perf_counter()
    for batch, (images, labels) in enumerate(setting.iterate("ablation sweep")):
        if batch == 0 and timing_configs:  # after one untimed forward pass (warm-up)
            naive = _naive_seconds(setting.model, images, channel_sets[:timing_configs])
        mark = time.perf_counter()
        predictions = ablated_predictions(setting.model, images, channel_sets)
        cached = time.perf_counter() - mark
        for confusion, preds in zip(confusions, predictions, strict=True):
            confusion.update(preds, labels)
        if batch == 0 and timing_configs:
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
                predicted_classes(model(images))
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
    whole_image_labels: bool = False,
    seed: int = 0,
) -> AttackOutcome:
    """Attack this shard's images; sums of the metrics over all processes.

    ``region`` is the (H, W) mask the attack targets (measured as ``"region"``). With
    ``whole_image_labels`` the 255 pixels of the labels are replaced by the clean prediction
    (``torchattacks.PGD``'s cross-entropy does not ignore 255). The global RNG is seeded with
    ``seed`` before each batch, so attacks that draw their random start from it (torchattacks)
    repeat across runs.
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
        with torch.no_grad():
            clean = predicted_classes(setting.model(images))
        given = torch.where(labels == IGNORE_INDEX, clean, labels) if whole_image_labels else labels
        torch.manual_seed(seed)
        start = time.perf_counter()
        adversarial = attack(images, given)
        seconds += time.perf_counter() - start
        with torch.no_grad():
            preds = predicted_classes(setting.model(adversarial))
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


def build_attack(
    name: str,
    model: nn.Module,
    eps: float,
    region: torch.Tensor,
    *,
    steps: int,
    seed: int,
    ranking: ChannelRanking | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """One attack of the suite at radius ``eps`` (step ``eps / 4``) against ``region``.

    ``PGD`` is ``torchattacks.PGD`` on the whole image; ``PositionChannelAttack`` needs the
    ``ranking`` of the region's channels.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> attack = build_attack("PGD", TinySegmenter(), 8 / 255, None, steps=2, seed=0)
        >>> type(attack).__name__
        'PGD'
    """
    import torchattacks

    from regionattack.attacks import CosPGD, PositionChannelAttack, RegionAttack, RegionPGD, SegPGD

    common = {"eps": eps, "alpha": eps / 4, "steps": steps, "seed": seed}
    if name == "RegionAttack":
        return RegionAttack(model, region, **common)
    if name == "RegionPGD":
        return RegionPGD(model, region, **common)
    if name == "SegPGD":
        return SegPGD(model, region=region, **common)
    if name == "CosPGD":
        return CosPGD(model, region=region, **common)
    if name == "PositionChannelAttack":
        if ranking is None:
            raise ValueError("PositionChannelAttack needs the ranking of the region's channels")
        return PositionChannelAttack(model, ranking, **common)
    if name == "PGD":
        return torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=steps, random_start=True)
    raise ValueError(f"unknown attack {name!r}; choose from {list(ATTACKS)}")


def summarize_attack(outcome: AttackOutcome) -> dict[str, float]:
    """The measured numbers of an attack: mIoU inside/outside ``"region"``, drops, specificity."""
    clean = outcome.clean.mious()
    attacked = outcome.attacked.mious()
    clean_r = RegionMIoU(clean["all"], clean["region"], clean["not-region"])
    attacked_r = RegionMIoU(attacked["all"], attacked["region"], attacked["not-region"])
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
        with frozen(setting.model), torch.no_grad():
            clean = predicted_classes(setting.model(images))
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
