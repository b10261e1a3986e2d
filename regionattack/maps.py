"""Vulnerability maps: how easily each part of the image can be broken, cell by cell.

For each cell of a grid (or each user mask) a region attack breaks that cell and keeps the rest
of the prediction, and the cell's top position channels are zeroed; the result is one number per
cell and measure, laid out like the grid.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from regionattack import regions
from regionattack._checks import (
    IGNORE_INDEX,
    check_choice,
    check_images,
    check_labels,
    check_positive_int,
    check_radius,
    check_seed,
)
from regionattack._state import frozen
from regionattack.ablation import ablated_predictions
from regionattack.attacks import SEA, CosPGD, RegionAttack, RegionPGD, SegPGD
from regionattack.latent import find_layer, model_logits, predicted_classes
from regionattack.metrics import ConfusionMatrix
from regionattack.ranking import (
    default_k,
    gradient_effects,
    ranking_from_statistics,
)

__all__ = [
    "REGION_ATTACKS",
    "VulnerabilityMap",
    "map_cells",
    "vulnerability_map",
]

#: The attacks a map can use: each breaks a region given per sample and takes ``eps``/``steps``.
REGION_ATTACKS = {
    "RegionAttack": RegionAttack,
    "RegionPGD": RegionPGD,
    "CosPGD": CosPGD,
    "SegPGD": SegPGD,
    "SEA": SEA,
}
MEASURES = ("changed_inside", "changed_outside", "miou_drop", "channel_drop", "minimal_eps")
GridLike = int | tuple[int, int] | torch.Tensor


@dataclasses.dataclass(frozen=True)
class VulnerabilityMap:
    """Per-cell measures of how fragile each part of the image is (see :func:`vulnerability_map`).

    Each measure is a float tensor of ``shape``: (rows, cols) for a grid, (M,) for M user masks.

    Attributes:
        cells: (M, H, W) bool masks, row by row for a grid.
        shape: (rows, cols) or (M,).
        changed_inside: Mean over images of the fraction of the cell's valid pixels whose
            predicted class the attack changed.
        changed_outside: The same for the pixels outside the cell (what the attack did not keep).
        miou_drop: The cell's mIoU (w.r.t. the labels, or the clean prediction) before minus
            after the attack, accumulated over the images.
        channel_drop: The cell's mIoU drop when its top-``k`` gradient-ranked position channels
            are zeroed; None when the map was made with ``channels=False``.
        settings: How the map was made (attack, eps, steps, seed, k, images, labels given).
        minimal_eps: Per cell, the median over images of the smallest eps that breaks it (at
            least ``break_fraction`` of its valid pixels changed, at most ``max_outside`` of the
            others);
            ``inf`` where ``eps_max`` is not enough; None unless asked for.
    """

    cells: torch.Tensor
    shape: tuple[int, ...]
    changed_inside: torch.Tensor
    changed_outside: torch.Tensor
    miou_drop: torch.Tensor
    channel_drop: torch.Tensor | None
    settings: dict
    minimal_eps: torch.Tensor | None = None

    @classmethod
    def from_rows(
        cls, cells: torch.Tensor, shape: tuple[int, ...], rows: Sequence[dict], settings: dict
    ) -> VulnerabilityMap:
        """A map from one ``{measure: value}`` dict per cell, in cell order.

        Values are the measures of :data:`MEASURES` (None for NaN, and for ``inf`` in
        ``minimal_eps``); ``channel_drop`` and ``minimal_eps`` are absent or None in every row
        when they were not computed.

        Example:
            >>> rows = [{"changed_inside": 0.5, "changed_outside": 0.0, "miou_drop": 0.25},
            ...         {"changed_inside": None, "changed_outside": 0.1, "miou_drop": 0.0}]
            >>> m = VulnerabilityMap.from_rows(torch.ones(2, 1, 1, dtype=torch.bool), (1, 2),
            ...                                rows, {})
            >>> m.changed_inside.tolist(), m.channel_drop
            ([[0.5, nan]], None)
        """

        def gather(name: str) -> torch.Tensor:
            missing = math.inf if name == "minimal_eps" else math.nan
            values = [missing if row.get(name) is None else row[name] for row in rows]
            return torch.tensor(values, dtype=torch.float32).reshape(shape)

        computed = any(row.get("channel_drop") is not None for row in rows)
        bisected = any("minimal_eps" in row for row in rows)
        return cls(
            cells=cells,
            shape=tuple(shape),
            changed_inside=gather("changed_inside"),
            changed_outside=gather("changed_outside"),
            miou_drop=gather("miou_drop"),
            channel_drop=gather("channel_drop") if computed else None,
            settings=dict(settings),
            minimal_eps=gather("minimal_eps") if bisected else None,
        )

    def measures(self) -> dict[str, torch.Tensor]:
        """The measures the map holds, by name (``channel_drop`` only when computed)."""
        values = {name: getattr(self, name) for name in MEASURES}
        return {name: value for name, value in values.items() if value is not None}

    def weakest(self, measure: str = "miou_drop") -> list[int]:
        """Cell numbers (row by row), most fragile first by ``measure``.

        Largest value first, except for ``minimal_eps`` (smallest first). ``changed_outside`` is
        not a measure of fragility and is refused.

        Example:
            >>> m = VulnerabilityMap(torch.ones(2, 1, 2, dtype=torch.bool), (1, 2),
            ...                      torch.tensor([[0.1, 0.9]]), torch.zeros(1, 2),
            ...                      torch.tensor([[0.3, 0.2]]), None, {})
            >>> m.weakest(), m.weakest("changed_inside")
            ([0, 1], [1, 0])
        """
        names = [name for name in self.measures() if name != "changed_outside"]
        values = getattr(self, check_choice(measure, "measure", names)).flatten()
        sign = 1.0 if measure == "minimal_eps" else -1.0
        return sorted(range(len(values)), key=lambda i: sign * float(values[i]))

    def to_dict(self) -> dict:
        """The shape, the settings and each measure as nested lists, JSON-ready.

        NaN (a cell with no valid pixel) and, in ``minimal_eps``, ``inf`` become None.
        """
        return {
            "shape": list(self.shape),
            "settings": dict(self.settings),
            **{name: _finite_or_none(value.tolist()) for name, value in self.measures().items()},
        }

    def rows(self) -> list[dict]:
        """One ``{measure: value}`` dict per cell, in cell order: the input of :meth:`from_rows`.

        NaN and, in ``minimal_eps``, ``inf`` become None, as in :meth:`to_dict`.

        Example:
            >>> m = VulnerabilityMap(torch.ones(2, 1, 1, dtype=torch.bool), (1, 2),
            ...                      torch.tensor([[0.5, 0.25]]), torch.zeros(1, 2),
            ...                      torch.tensor([[0.2, float("nan")]]), None, {})
            >>> m.rows()[1]
            {'changed_inside': 0.25, 'changed_outside': 0.0, 'miou_drop': None}
        """
        flat = {
            name: _finite_or_none(value.flatten().tolist())
            for name, value in self.measures().items()
        }
        return [{name: values[j] for name, values in flat.items()} for j in range(len(self.cells))]

    def save(self, directory: str | Path, image: torch.Tensor | None = None) -> tuple[Path, Path]:
        """Write :meth:`table` to ``directory/map.md`` and :meth:`plot` to ``directory/map.png``.

        Returns:
            The two paths.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        table, figure = directory / "map.md", directory / "map.png"
        table.write_text(self.table() + "\n")
        self.plot(image, figure)
        return table, figure

    def table(self) -> str:
        """A Markdown table with one row per cell (row, column for a grid).

        Example:
            >>> m = VulnerabilityMap(torch.ones(1, 1, 1, dtype=torch.bool), (1, 1),
            ...                      torch.tensor([[0.5]]), torch.tensor([[0.01]]),
            ...                      torch.tensor([[0.25]]), None, {})
            >>> print(m.table())
            | cell | changed inside | changed outside | mIoU drop |
            |---|---|---|---|
            | (0, 0) | 0.500 | 0.010 | 0.250 |
        """
        measures = self.measures()
        heads = [name.replace("_", " ").replace("miou", "mIoU") for name in measures]
        lines = [f"| cell | {' | '.join(heads)} |", "|---" * (len(heads) + 1) + "|"]
        for index in range(self.cells.shape[0]):
            label = divmod(index, self.shape[1]) if len(self.shape) == 2 else index
            cells = [f"{float(value.flatten()[index]):.3f}" for value in measures.values()]
            lines.append(f"| {label} | {' | '.join(cells)} |")
        return "\n".join(lines)

    def plot(self, image: torch.Tensor | None = None, path: str | Path | None = None):
        """Heat maps of each measure over ``image`` (3, H, W) in [0, 1]; written to ``path``.

        Returns:
            The matplotlib ``Figure``.
        """
        from regionattack._figures import plot_vulnerability_map

        return plot_vulnerability_map(self.cells, self.measures(), image, path)


def map_cells(grid: GridLike, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The (M, H, W) cell masks of ``grid`` and the map's shape.

    Args:
        grid: Cells per side (int), ``(rows, cols)``, or masks: (H, W), (M, H, W) or
            (M, 1, H, W), bool or 0/1.
        size: Image size (height, width).

    Raises:
        ValueError: If the grid does not fit the image or a mask is empty or of another size.
        TypeError: For a grid of another type.

    Example:
        >>> cells, shape = map_cells((1, 2), (2, 4))
        >>> cells.int().tolist(), shape
        ([[[1, 1, 0, 0], [1, 1, 0, 0]], [[0, 0, 1, 1], [0, 0, 1, 1]]], (1, 2))
    """
    if isinstance(grid, int) and not isinstance(grid, bool):
        grid = (grid, grid)
    if isinstance(grid, tuple):
        if len(grid) != 2:
            raise ValueError(f"grid must be an int, (rows, cols) or masks; got {grid!r}")
        rows, cols = (check_positive_int(value, "grid") for value in grid)
        return regions.grid_cells(size, rows, cols), (rows, cols)
    if isinstance(grid, bool) or not hasattr(grid, "shape"):
        raise TypeError(f"grid must be an int, (rows, cols) or masks; got {type(grid).__name__}")
    cells = regions.as_mask(grid, size)
    return cells, (cells.shape[0],)


def vulnerability_map(
    model: nn.Module,
    images: torch.Tensor,
    *,
    grid: GridLike = 3,
    labels: torch.Tensor | None = None,
    attack: str = "RegionAttack",
    eps: float = 8 / 255,
    steps: int = 10,
    channels: bool = True,
    k: int | None = None,
    layer: str | None = None,
    seed: int | None = 0,
    batch_size: int = 16,
    progress: bool = False,
    minimal_eps: bool = False,
    eps_max: float = 32 / 255,
    break_fraction: float = 0.5,
    max_outside: float = 0.01,
) -> VulnerabilityMap:
    """Break each cell of a grid in turn and measure how far it breaks and what else changes.

    For every (image, cell) pair, ``attack`` (built with ``region`` = the cell, ``eps``, ``steps``,
    a step of ``eps / 4`` where it takes one, and ``seed``) attacks the image; pairs of several
    cells share a batch. With ``channels=True`` the cell's top-``k`` position channels (ranked by
    :func:`~regionattack.rank_channels` with ``method="gradient"`` and ``region`` = the cell, on
    the same images and labels) are zeroed; one forward pass per batch serves the rankings of
    all cells, and one encoder pass per batch their zeroing.

    Args:
        model: Segmentation model taking images in [0, 1]; left exactly as it was.
        images: (N, 3, H, W) images in [0, 1].
        grid: Cells per side, ``(rows, cols)``, or (M, H, W) masks of any shape.
        labels: (N, H, W) labels (255 = ignore); default: the clean predictions.
        attack: One of :data:`REGION_ATTACKS`.
        eps: L-inf radius in image units [0, 1].
        steps: Attack steps.
        channels: Also measure ``channel_drop`` (needs a detectable latent layer).
        k: Channels zeroed per cell (default: 5% of the latent's channels).
        layer: Latent layer (default: the architecture's).
        seed: The attack's seed (its random start).
        batch_size: (image, cell) pairs per attack batch.
        progress: Show a progress bar (tqdm) over the attack batches.
        minimal_eps: Also find each cell's minimal eps: per image, the smallest radius (by
            bisection on [0, ``eps_max``] down to 0.5/255) at which the attack changes at least
            ``break_fraction`` of the cell's valid pixels and at most ``max_outside`` of the
            others; per cell the median over images (``inf`` where ``eps_max`` does not break
            it, or the rest changes too much at the smallest eps that does). Each
            (image, cell) pair costs at most ``ceil(log2(eps_max / (0.5/255))) + 1`` attacks;
            pairs not broken at ``eps_max`` leave after the first.
        eps_max: The largest radius tried.
        break_fraction: Fraction of the cell's pixels that must change, in (0, 1].
        max_outside: Largest fraction of the other pixels that may change at the minimal eps,
            in [0, 1] (1: no limit, the smallest eps that breaks the cell).

    Returns:
        The :class:`VulnerabilityMap`.

    Raises:
        ValueError: For bad images, labels or grid, an unknown attack, a radius out of [0, 1], or
            (with ``channels=True``) a model whose latent layer cannot be found.
        TypeError: For arguments of the wrong type.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> torch.manual_seed(0) and None
        >>> net = TinySegmenter(num_classes=3).eval()
        >>> vmap = vulnerability_map(net, torch.rand(2, 3, 32, 32), grid=2, steps=2)
        >>> vmap.shape, vmap.miou_drop.shape, len(vmap.weakest())
        ((2, 2), torch.Size([2, 2]), 4)
    """
    images = check_images(images)
    if labels is not None:
        labels = check_labels(labels, images)
    check_choice(attack, "attack", list(REGION_ATTACKS))
    eps = check_radius(eps, "eps")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    eps_max = check_radius(eps_max, "eps_max")
    if isinstance(break_fraction, bool) or not isinstance(break_fraction, (int, float)):
        raise TypeError(f"break_fraction must be a number; got {type(break_fraction).__name__}")
    if not 0 < break_fraction <= 1:
        raise ValueError(f"break_fraction must be in (0, 1]; got {break_fraction!r}")
    if isinstance(max_outside, bool) or not isinstance(max_outside, (int, float)):
        raise TypeError(f"max_outside must be a number; got {type(max_outside).__name__}")
    if not 0 <= max_outside <= 1:
        raise ValueError(f"max_outside must be in [0, 1]; got {max_outside!r}")
    size = (images.shape[-2], images.shape[-1])
    cells, shape = map_cells(grid, size)
    cells = cells.to(images.device)
    if channels:
        try:
            layer = find_layer(model, layer)[0]
        except ValueError as error:
            raise ValueError(
                f"{error}; pass channels=False to map a model without a detectable latent"
            ) from error

    clean, num_classes = _clean_predictions(model, images, batch_size)
    targets = clean if labels is None else labels
    valid = targets != IGNORE_INDEX
    clean_counts = _cell_confusions(clean, targets, cells, num_classes)

    def build(radius: float):
        cls = REGION_ATTACKS[attack]
        options = {"eps": radius, "steps": steps, "seed": seed}
        if "alpha" in inspect.signature(cls).parameters:
            options["alpha"] = radius / 4
        return cls(model, region=cells[0], **options)

    outcome = _PairOutcome(model, images, labels, clean, valid, cells, batch_size)
    region_attack = build(eps)
    adversarial = [ConfusionMatrix(num_classes) for _ in range(len(cells))]
    inside_sum = torch.zeros(len(cells), dtype=torch.float64)
    outside_sum = torch.zeros(len(cells), dtype=torch.float64)
    inside_seen = torch.zeros(len(cells))
    outside_seen = torch.zeros(len(cells))
    pairs = [(i, j) for j in range(len(cells)) for i in range(len(images))]
    chunks = [pairs[start : start + batch_size] for start in range(0, len(pairs), batch_size)]
    for chunk in _progress(chunks, progress, f"{attack} map"):
        image_ids = torch.tensor([i for i, _ in chunk], device=images.device)
        cell_ids = torch.tensor([j for _, j in chunk], device=images.device)
        predicted, fractions, counted = outcome(region_attack, image_ids, cell_ids)
        for j in cell_ids.unique().tolist():
            rows = cell_ids == j
            adversarial[j].update(predicted[rows], targets[image_ids][rows], cells[cell_ids][rows])
            for side, (sums, seen) in enumerate(((inside_sum, inside_seen),
                                                 (outside_sum, outside_seen))):  # fmt: skip
                kept = counted[side][rows] > 0
                sums[j] += float(fractions[side][rows][kept].double().sum())
                seen[j] += int(kept.sum())
    smallest = None
    if minimal_eps:
        smallest = _minimal_eps(
            build, outcome, len(images), len(cells), eps_max, break_fraction, max_outside
        )

    channel_drop = None
    if channels:
        channel_drop = _channel_drops(
            model, images, labels, targets, cells, num_classes, clean_counts, k, layer, batch_size
        )
    miou_drop = torch.tensor(
        [clean_counts[j].miou() - adversarial[j].miou() for j in range(len(cells))]
    )
    settings = {
        "attack": attack,
        "eps": eps,
        "steps": steps,
        "seed": seed,
        "images": len(images),
        "labels": labels is not None,
        "k": None if not channels else k,
        "layer": layer if channels else None,
        "eps_max": eps_max if minimal_eps else None,
        "break_fraction": break_fraction if minimal_eps else None,
        "max_outside": max_outside if minimal_eps else None,
    }
    return VulnerabilityMap(
        cells=cells.cpu(),
        shape=shape,
        changed_inside=_nan_mean(inside_sum, inside_seen).reshape(shape),
        changed_outside=_nan_mean(outside_sum, outside_seen).reshape(shape),
        miou_drop=miou_drop.reshape(shape),
        channel_drop=None if channel_drop is None else channel_drop.reshape(shape),
        settings=settings,
        minimal_eps=None if smallest is None else smallest.reshape(shape),
    )


class _PairOutcome:
    """Runs an attack on (image, cell) pairs; returns predictions and changed fractions."""

    def __init__(self, model, images, labels, clean, valid, cells, batch_size):
        self.model, self.images, self.labels = model, images, labels
        self.clean, self.valid, self.cells, self.batch_size = clean, valid, cells, batch_size

    def __call__(
        self, attack, image_ids: torch.Tensor, cell_ids: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
        """``(predicted, (inside, outside) changed fractions, (inside, outside) valid counts)``."""
        masks = self.cells[cell_ids]
        labels = None if self.labels is None else self.labels[image_ids]
        adv = attack(self.images[image_ids], labels, region=masks, clean=self.clean[image_ids])
        predicted = _clean_predictions(self.model, adv, self.batch_size)[0]
        fractions, counts = changed_fractions(
            predicted, self.clean[image_ids], self.valid[image_ids], masks
        )
        return predicted, fractions, counts


def changed_fractions(
    predicted: torch.Tensor, clean: torch.Tensor, valid: torch.Tensor, inside: torch.Tensor
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Per image, the fraction of valid pixels whose class changed inside and outside ``inside``.

    Returns:
        ``((inside, outside) fractions, (inside, outside) valid pixel counts)``, each (N,).

    Example:
        >>> clean = torch.zeros(1, 2, 2, dtype=torch.long)
        >>> inside = torch.tensor([[[True, True], [False, False]]])
        >>> predicted = torch.tensor([[[1, 0], [1, 1]]])
        >>> [f.tolist() for f in changed_fractions(predicted, clean, clean == 0, inside)[0]]
        [[0.5], [1.0]]
    """
    changed = predicted != clean
    fractions, counts = [], []
    for where in (inside & valid, ~inside & valid):
        counted = where.flatten(1).sum(dim=1)
        fractions.append((changed & where).flatten(1).sum(dim=1) / counted.clamp_min(1))
        counts.append(counted)
    return (fractions[0], fractions[1]), (counts[0], counts[1])


#: By default, at most this fraction of the pixels outside a cell may change at its minimal eps.
MINIMAL_EPS_OUTSIDE = 0.01
#: The bisection of the minimal eps stops at this resolution (image units).
MINIMAL_EPS_RESOLUTION = 0.5 / 255


def _minimal_eps(build, outcome: _PairOutcome, num_images: int, num_cells: int, eps_max: float,
                 break_fraction: float, max_outside: float = MINIMAL_EPS_OUTSIDE) -> torch.Tensor:  # fmt: skip
    """Per cell, the median over images of the smallest eps that breaks it (see the map).

    The two conditions pull apart: a larger eps changes more of the cell *and* more of the rest.
    So the smallest eps at which at least ``break_fraction`` of the cell changes is found first,
    by bisection (that condition grows with eps), and the pair counts as broken at that eps only
    if at most ``max_outside`` of the other pixels changed there; otherwise, since
    a larger eps would change still more of them, it gets ``inf``. Every (image, cell) pair is
    attacked at ``eps_max`` first; a pair whose cell does not break there gets ``inf`` and leaves.
    The others are bisected on [0, eps_max] down to :data:`MINIMAL_EPS_RESOLUTION`, each with
    its own interval: pairs whose midpoints agree share an attack. So each pair costs at most
    ``ceil(log2(eps_max / resolution)) + 1`` attacks.
    """
    pairs = [(i, j) for j in range(num_cells) for i in range(num_images)]
    rounds = max(0, math.ceil(math.log2(eps_max / MINIMAL_EPS_RESOLUTION))) if eps_max else 0
    low = [0.0] * len(pairs)
    high = [eps_max] * len(pairs)
    outside_at_high = [math.inf] * len(pairs)

    def attack(indices: list[int], radii: list[float]) -> dict[int, tuple[bool, float]]:
        """For each pair: (cell broken, fraction of the other pixels changed) at its radius."""
        result: dict[int, tuple[bool, float]] = {}
        groups: dict[float, list[int]] = {}
        for index, radius in zip(indices, radii, strict=True):
            groups.setdefault(radius, []).append(index)
        for radius, members in groups.items():
            region_attack = build(radius)
            for start in range(0, len(members), outcome.batch_size):
                chunk = members[start : start + outcome.batch_size]
                device = outcome.images.device
                image_ids = torch.tensor([pairs[m][0] for m in chunk], device=device)
                cell_ids = torch.tensor([pairs[m][1] for m in chunk], device=device)
                _, (inside, outside), (counted, _) = outcome(region_attack, image_ids, cell_ids)
                ok = (inside >= break_fraction) & (counted > 0)
                result.update(
                    zip(chunk, zip(ok.tolist(), outside.tolist(), strict=True), strict=True)
                )
        return result

    first = attack(list(range(len(pairs))), [eps_max] * len(pairs))
    active = [index for index in range(len(pairs)) if first[index][0]]
    for index in active:
        outside_at_high[index] = first[index][1]
    for _ in range(rounds):
        if not active:
            break
        middles = [(low[index] + high[index]) / 2 for index in active]
        outcome_of = attack(active, middles)
        for index, middle in zip(active, middles, strict=True):
            broken, outside = outcome_of[index]
            if broken:
                high[index], outside_at_high[index] = middle, outside
            else:
                low[index] = middle
    smallest = [
        high[index] if outside_at_high[index] <= max_outside else math.inf
        for index in range(len(pairs))
    ]
    return torch.tensor(
        [
            statistics.median(smallest[j * num_images : (j + 1) * num_images])
            for j in range(num_cells)
        ],
        dtype=torch.float32,
    )


def _finite_or_none(values: object) -> object:
    """Nested lists of floats with NaN and infinities replaced by None."""
    if isinstance(values, list):
        return [_finite_or_none(value) for value in values]
    return values if math.isfinite(values) else None


def _nan_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``total / count`` as float32, NaN where nothing was counted."""
    return torch.where(count > 0, total / count.clamp_min(1), math.nan).float()


def _progress(items: Sequence, show: bool, description: str):
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, leave=False)


def _clean_predictions(
    model: nn.Module, images: torch.Tensor, batch_size: int
) -> tuple[torch.Tensor, int]:
    """Predicted classes of ``images`` in batches, and the number of classes."""
    predictions, num_classes = [], 0
    with frozen(model), torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model_logits(model(images[start : start + batch_size]), images.shape[-2:])
            num_classes = logits.shape[1]
            predictions.append(predicted_classes(logits))
    return torch.cat(predictions), num_classes


def _cell_confusions(
    predicted: torch.Tensor, targets: torch.Tensor, cells: torch.Tensor, num_classes: int
) -> list[ConfusionMatrix]:
    """One confusion matrix per cell, counting the pixels of that cell in every image."""
    counts = []
    for cell in cells:
        matrix = ConfusionMatrix(num_classes)
        matrix.update(predicted, targets, cell[None])
        counts.append(matrix)
    return counts


def _channel_drops(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    targets: torch.Tensor,
    cells: torch.Tensor,
    num_classes: int,
    clean_counts: list[ConfusionMatrix],
    k: int | None,
    layer: str,
    batch_size: int,
) -> torch.Tensor:
    """Each cell's mIoU drop when its top-``k`` gradient-ranked channels are zeroed.

    The rankings equal ``rank_channels(model, images, region=cell, labels=labels)`` for each cell
    (up to float rounding), but one forward pass per batch serves every cell, and the backward
    passes (to the latent only) are one per cell and one for the whole image: the effects are
    linear in the pixel weights, so a cell's complement is the whole image minus the cell.
    """
    masks = torch.cat([cells, torch.ones_like(cells[:1])])[:, None]  # cells, then the whole image
    total = None
    for start in range(0, len(images), batch_size):
        batch = slice(start, start + batch_size)
        batch_labels = None if labels is None else labels[batch]
        valid = torch.ones_like(masks[0]) if labels is None else batch_labels != IGNORE_INDEX
        sums = (masks & valid).float()  # (cells + 1, N or 1, H, W): unnormalised pixel weights
        effects = gradient_effects(model, images[batch], sums, targets=batch_labels, layer=layer)
        counts = sums.sum(dim=(-2, -1)).T[..., None]  # (N, cells + 1, 1) valid pixels
        inside = effects[:, :-1] / counts[:, :-1].clamp_min(1)
        rest = counts[:, -1:] - counts[:, :-1]
        outside = (effects[:, -1:] - effects[:, :-1]) / rest.clamp_min(1)
        effects = torch.stack([inside, outside], dim=2).sum(dim=0)  # (cells, 2, K)
        total = effects if total is None else total + effects
    tops = []
    for j, cell in enumerate(cells):
        ranking = ranking_from_statistics(total[j], len(images), region=cell, layer=layer)
        tops.append(ranking.top(k if k is not None else default_k(ranking.num_channels)))
    ablated = [ConfusionMatrix(num_classes) for _ in range(len(cells))]
    for start in range(0, len(images), batch_size):
        batch = slice(start, start + batch_size)
        predictions = ablated_predictions(model, images[batch], tops, layer=layer)
        for j, predicted in enumerate(predictions):
            ablated[j].update(predicted, targets[batch], cells[j][None])
    return torch.tensor([clean_counts[j].miou() - ablated[j].miou() for j in range(len(cells))])
