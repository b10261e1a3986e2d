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
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from regionattack import regions
from regionattack._checks import (
    IGNORE_INDEX,
    check_choice,
    check_labels,
    check_positive_int,
    check_radius,
    check_seed,
    model_inputs,
)
from regionattack._state import frozen
from regionattack.ablation import ablated_predictions
from regionattack.attacks.base import attack_with_clean
from regionattack.attacks.registry import build_attack, parse_region_attack_name
from regionattack.latent import checked_logits, find_layer, model_logits, predicted_classes
from regionattack.metrics import ConfusionMatrix, changed_fractions
from regionattack.ranking import (
    default_k,
    gradient_effects,
    ranking_from_statistics,
)

__all__ = [
    "Mapper",
    "VulnerabilityMap",
    "map_cells",
    "vulnerability_map",
]

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

        Largest value first, except for ``minimal_eps`` (smallest first). Cells whose value is
        NaN (no valid pixel to measure) come last. ``changed_outside`` is not a measure of
        fragility and is refused.

        Example:
            >>> m = VulnerabilityMap(torch.ones(2, 1, 2, dtype=torch.bool), (1, 2),
            ...                      torch.tensor([[0.1, 0.9]]), torch.zeros(1, 2),
            ...                      torch.tensor([[0.3, 0.2]]), None, {})
            >>> m.weakest(), m.weakest("changed_inside")
            ([0, 1], [1, 0])
            >>> m.miou_drop[0, 0] = float("nan")  # a cell without valid pixels comes last
            >>> m.weakest()
            [1, 0]
        """
        names = [name for name in self.measures() if name != "changed_outside"]
        values = getattr(self, check_choice(measure, "measure", names)).flatten()
        sign = 1.0 if measure == "minimal_eps" else -1.0
        return sorted(
            range(len(values)),
            key=lambda i: (math.isnan(float(values[i])), sign * float(values[i])),
        )

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
        attack: A registered attack (:data:`regionattack.attacks.ATTACKS`, options in brackets
            such as ``"CosPGD[apgd]"``) whose ``forward`` takes the region per call
            (``region=``), as every :class:`~regionattack.SegmentationAttack` does.
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
    mapper = Mapper(
        model, images, grid=grid, labels=labels, attack=attack, eps=eps, steps=steps,
        channels=channels, k=k, layer=layer, seed=seed, batch_size=batch_size, progress=progress,
        minimal_eps=minimal_eps, eps_max=eps_max, break_fraction=break_fraction,
        max_outside=max_outside,
    )  # fmt: skip
    rows = mapper.attack_rows(range(len(mapper.cells)))
    for row, drop in zip(rows, mapper.channel_drops() or [], strict=False):
        row["channel_drop"] = drop
    return mapper.map(rows)


class Mapper:
    """The work of a vulnerability map in pieces, for a run that stores each piece as it ends.

    Built with the arguments of :func:`vulnerability_map` (checked here, before any work), it
    makes the clean predictions once; :meth:`attack_rows` attacks the cells asked for,
    :meth:`channel_drops` ranks and zeroes the channels of every cell (one forward pass per batch
    for all cells), and :meth:`map` assembles the rows; :meth:`by_units` does all three as units
    of a resumable run, as ``regionattack map`` does, so an interrupted map resumes cell by cell.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> torch.manual_seed(0) and None
        >>> mapper = Mapper(TinySegmenter(num_classes=3).eval(), torch.rand(2, 3, 32, 32),
        ...                 grid=2, steps=1)
        >>> rows = mapper.attack_rows([0, 3])
        >>> sorted(rows[0]), len(mapper.channel_drops())
        (['changed_inside', 'changed_outside', 'miou_drop'], 4)
    """

    def __init__(
        self,
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
    ):
        images = model_inputs(model, images)
        if labels is not None:
            labels = check_labels(labels, images)
        parse_region_attack_name(attack)
        eps = check_radius(eps, "eps")
        self.steps = check_positive_int(steps, "steps")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.seed = check_seed(seed)
        eps_max = check_radius(eps_max, "eps_max")
        for value, name in ((break_fraction, "break_fraction"), (max_outside, "max_outside")):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number; got {type(value).__name__}")
        if not 0 < break_fraction <= 1:
            raise ValueError(f"break_fraction must be in (0, 1]; got {break_fraction!r}")
        if not 0 <= max_outside <= 1:
            raise ValueError(f"max_outside must be in [0, 1]; got {max_outside!r}")
        cells, self.shape = map_cells(grid, (images.shape[-2], images.shape[-1]))
        self.cells = cells.to(images.device)
        if channels:
            try:
                layer = find_layer(model, layer)[0]
            except ValueError as error:
                raise ValueError(
                    f"{error}; pass channels=False to map a model without a detectable latent"
                ) from error
        self.model, self.images, self.labels = model, images, labels
        self.attack, self.eps, self.channels, self.k, self.layer = attack, eps, channels, k, layer
        self.progress, self.minimal_eps = progress, minimal_eps
        self.eps_max, self.break_fraction, self.max_outside = eps_max, break_fraction, max_outside
        self.build(eps)  # refuses an attack that cannot be mapped before any work
        self.clean, self.num_classes = _clean_predictions(model, images, self.batch_size)
        self.targets = self.clean if labels is None else labels
        self.valid = self.targets != IGNORE_INDEX
        self.clean_counts = _cell_confusions(self.clean, self.targets, self.cells, self.num_classes)
        self.outcome = _PairOutcome(
            model, images, labels, self.clean, self.valid, self.cells, self.batch_size
        )

    @property
    def settings(self) -> dict:
        """How the map is made (the :attr:`VulnerabilityMap.settings`)."""
        return {
            "attack": self.attack,
            "eps": self.eps,
            "steps": self.steps,
            "seed": self.seed,
            "images": len(self.images),
            "labels": self.labels is not None,
            "k": self.k if self.channels else None,
            "layer": self.layer if self.channels else None,
            "eps_max": self.eps_max if self.minimal_eps else None,
            "break_fraction": self.break_fraction if self.minimal_eps else None,
            "max_outside": self.max_outside if self.minimal_eps else None,
        }

    def build(self, radius: float) -> nn.Module:
        """The map's attack at ``radius``."""
        built = build_attack(
            self.attack, self.model, eps=radius, steps=self.steps, seed=self.seed,
            region=self.cells[0],
        )  # fmt: skip
        if "region" not in inspect.signature(built.forward).parameters:
            raise ValueError(
                f"attack {self.attack!r} cannot be mapped: its forward takes no per-call region "
                "(forward(images, labels, region=...)), as a SegmentationAttack's does"
            )
        return built

    def attack_rows(self, cell_ids: Sequence[int]) -> list[dict]:
        """For each cell of ``cell_ids``: changed inside and outside, mIoU drop (and minimal eps).

        (image, cell) pairs go to the attack cell by cell, ``batch_size`` at a time.
        """
        cell_ids = list(cell_ids)
        count = len(cell_ids)
        region_attack = self.build(self.eps)
        adversarial = [ConfusionMatrix(self.num_classes) for _ in range(count)]
        sums = torch.zeros(2, count, dtype=torch.float64)
        seen = torch.zeros(2, count)
        pairs = [(i, slot) for slot in range(count) for i in range(len(self.images))]
        chunks = [pairs[at : at + self.batch_size] for at in range(0, len(pairs), self.batch_size)]
        device = self.images.device
        for chunk in _progress(chunks, self.progress, f"{self.attack} map"):
            image_ids = torch.tensor([i for i, _ in chunk], device=device)
            slots = torch.tensor([slot for _, slot in chunk], device=device)
            cells = torch.tensor(cell_ids, device=device)[slots]
            predicted, fractions, counted = self.outcome(region_attack, image_ids, cells)
            for slot in slots.unique().tolist():
                rows = slots == slot
                adversarial[slot].update(
                    predicted[rows], self.targets[image_ids][rows], self.cells[cells][rows]
                )
                for side in range(2):
                    kept = counted[side][rows] > 0
                    sums[side, slot] += float(fractions[side][rows][kept].double().sum())
                    seen[side, slot] += int(kept.sum())
        inside, outside = _nan_mean(sums, seen).tolist()
        rows = [
            {
                "changed_inside": inside[slot],
                "changed_outside": outside[slot],
                "miou_drop": self.clean_counts[j].miou() - adversarial[slot].miou(),
            }
            for slot, j in enumerate(cell_ids)
        ]
        if self.minimal_eps:
            smallest = _minimal_eps(
                self.build, self.outcome, len(self.images), cell_ids, self.eps_max,
                self.break_fraction, self.max_outside,
            )  # fmt: skip
            for row, value in zip(rows, smallest.tolist(), strict=True):
                row["minimal_eps"] = value
        return [_finite_or_none_row(row) for row in rows]

    def channel_drops(self) -> list[float | None] | None:
        """Per cell, the mIoU drop with its top-``k`` position channels zeroed (None: not asked)."""
        if not self.channels:
            return None
        drops = _channel_drops(
            self.model, self.images, self.labels, self.targets, self.cells, self.num_classes,
            self.clean_counts, self.k, self.layer, self.batch_size,
        )  # fmt: skip
        return _finite_or_none(drops.tolist())

    def by_units(
        self, unit: Callable[[str, Callable[[], object]], object], settings: dict | None = None
    ) -> VulnerabilityMap:
        """The map made of resumable units: ``cell/<j>`` per cell, ``channels`` for all cells.

        ``unit(key, compute)`` returns the stored value of ``key``, computing and storing it when
        absent (:meth:`ResultStore.unit <regionattack.bench.store.ResultStore.unit>`): how
        ``regionattack map`` resumes an interrupted map cell by cell. Each cell's pairs are
        attacked on their own, so a cell's result does not depend on which others were done.

        Example:
            >>> from regionattack.models import TinySegmenter
            >>> torch.manual_seed(0) and None
            >>> mapper = Mapper(TinySegmenter(num_classes=3).eval(), torch.rand(2, 3, 32, 32),
            ...                 grid=2, steps=1)
            >>> done = {}
            >>> vmap = mapper.by_units(lambda key, compute: done.setdefault(key, compute()))
            >>> vmap.shape, list(done)
            ((2, 2), ['cell/0', 'cell/1', 'cell/2', 'cell/3', 'channels'])
        """
        wanted = ["changed_inside", "changed_outside", "miou_drop"]
        wanted += ["minimal_eps"] if self.minimal_eps else []
        rows = [
            _checked_unit(
                f"cell/{j}", unit(f"cell/{j}", lambda j=j: self.attack_rows([j])[0]), wanted
            )
            for j in range(len(self.cells))
        ]
        drops = unit("channels", self.channel_drops)
        if drops is not None:
            _checked_unit("channels", drops, range(len(self.cells)))
        for row, drop in zip(rows, drops or [], strict=False):  # type: ignore[arg-type]
            row["channel_drop"] = drop
        return VulnerabilityMap.from_rows(
            self.cells.cpu(), self.shape, rows, self.settings if settings is None else settings
        )

    def map(self, rows: Sequence[dict]) -> VulnerabilityMap:
        """The map of one row per cell (from :meth:`attack_rows`, ``channel_drop`` added)."""
        return VulnerabilityMap.from_rows(self.cells.cpu(), self.shape, rows, self.settings)


def _checked_unit(key: str, value: object, wanted: Sequence) -> dict:
    """A stored unit's values (numbers, or None for NaN), refused when one is missing or wrong.

    A unit edited or damaged in ``map.json`` would otherwise become a row of NaN cells.
    """
    if isinstance(value, list):
        value = dict(enumerate(value))
    if not isinstance(value, dict):
        value = {}
    missing = [name for name in wanted if name not in value]
    bad = [
        name
        for name in wanted
        if name in value
        and value[name] is not None
        and (isinstance(value[name], bool) or not isinstance(value[name], (int, float)))
    ]
    if missing or bad:
        raise ValueError(
            f"the stored unit {key!r} is not what the map computes (missing {missing}, not "
            f"numbers {bad}); delete it from map.json to compute it again"
        )
    return dict(value)


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
        images, clean = self.images[image_ids], self.clean[image_ids]
        adv = attack_with_clean(attack, images, labels, clean, region=masks)
        predicted = _clean_predictions(self.model, adv, self.batch_size)[0]
        fractions, counts = changed_fractions(
            predicted, self.clean[image_ids], self.valid[image_ids], masks
        )
        return predicted, fractions, counts


#: By default, at most this fraction of the pixels outside a cell may change at its minimal eps.
MINIMAL_EPS_OUTSIDE = 0.01
#: The bisection of the minimal eps stops at this resolution (image units).
MINIMAL_EPS_RESOLUTION = 0.5 / 255


def _minimal_eps(build, outcome: _PairOutcome, num_images: int, cell_ids: Sequence[int],
                 eps_max: float, break_fraction: float,
                 max_outside: float = MINIMAL_EPS_OUTSIDE) -> torch.Tensor:  # fmt: skip
    """Per cell of ``cell_ids``, the median over images of the smallest eps that breaks it (see the map).

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
    pairs = [(i, j) for j in cell_ids for i in range(num_images)]
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
            statistics.median(smallest[slot * num_images : (slot + 1) * num_images])
            for slot in range(len(cell_ids))
        ],
        dtype=torch.float32,
    )


def _finite_or_none(values: object) -> object:
    """Nested lists of floats with NaN and infinities replaced by None."""
    if isinstance(values, list):
        return [_finite_or_none(value) for value in values]
    return values if math.isfinite(values) else None


def _finite_or_none_row(row: dict) -> dict:
    """A row's values with NaN and infinities replaced by None."""
    return {name: _finite_or_none(value) for name, value in row.items()}


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
            predictions.append(predicted_classes(checked_logits(logits)))
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
