"""Segmentation metrics restricted to regions: streaming confusion matrix, region mIoU, specificity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from regionattack._checks import IGNORE_INDEX, check_class_map, check_positive_int
from regionattack.regions import RegionLike, as_mask, of_classes

__all__ = [
    "IGNORE_INDEX",
    "ConfusionMatrix",
    "RegionMIoU",
    "changed_fraction",
    "changed_fractions",
    "changed_pixels",
    "hiding_measures",
    "region_miou",
    "region_specificity",
    "spearman_correlation",
]


class ConfusionMatrix:
    """A streaming (num_classes x num_classes) confusion matrix; rows are targets, columns preds.

    Args:
        num_classes: Number of classes.
        ignore_index: Target value that is never counted.

    Example:
        >>> cm = ConfusionMatrix(2)
        >>> cm.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]))
        >>> cm.iou().tolist(), round(cm.miou(), 4)
        ([0.5, 0.5], 0.5)
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(
        self, preds: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Count predictions against targets (same shape), only where ``mask`` is True.

        Raises:
            ValueError: If shapes differ or a target/prediction is not a class id.
        """
        check_class_map(preds, "preds")
        check_class_map(targets, "targets")
        if preds.shape != targets.shape:
            raise ValueError(
                f"preds and targets must have the same shape; got {tuple(preds.shape)} and "
                f"{tuple(targets.shape)}"
            )
        keep = targets != self.ignore_index
        if mask is not None:
            keep &= mask.to(targets.device).expand_as(targets)
        preds, targets = preds[keep].long(), targets[keep].long()
        if targets.numel() == 0:
            return
        if int(targets.max()) >= self.num_classes or int(targets.min()) < 0:
            raise ValueError(
                f"targets must be class ids in [0, {self.num_classes}) or {self.ignore_index}; "
                f"got range [{int(targets.min())}, {int(targets.max())}]"
            )
        if int(preds.max()) >= self.num_classes or int(preds.min()) < 0:
            raise ValueError(f"preds must be class ids in [0, {self.num_classes})")
        counts = torch.bincount(targets * self.num_classes + preds, minlength=self.num_classes**2)
        self.matrix += counts.view(self.num_classes, self.num_classes).cpu()

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another confusion matrix's counts (e.g. from another process or shard)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.matrix += other.matrix

    def iou(self) -> torch.Tensor:
        """Per-class IoU; NaN for classes absent from both targets and predictions."""
        matrix = self.matrix.double()
        intersection = matrix.diag()
        union = matrix.sum(0) + matrix.sum(1) - intersection
        return torch.where(union > 0, intersection / union.clamp_min(1), torch.nan).float()

    def miou(self) -> float:
        """Mean IoU over the classes present in targets or predictions (NaN when nothing counted)."""
        iou = self.iou()
        present = ~torch.isnan(iou)
        return float(iou[present].mean()) if bool(present.any()) else float("nan")

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly (NaN when nothing counted)."""
        total = int(self.matrix.sum())
        return float(self.matrix.diag().sum()) / total if total else float("nan")


@dataclass(frozen=True)
class RegionMIoU:
    """mIoU on all pixels, inside the region and outside it."""

    all: float
    inside: float
    outside: float


class MaskedConfusions:
    """Confusion matrices of one prediction stream on all pixels and inside named masks.

    The library's one way to count region mIoU: the benchmark, the demo, the defense harness and
    :meth:`~regionattack.SegmentationAttack.save` all use it. Masks are fixed (H, W) masks given
    here, or (N or 1, H, W) masks given to each :meth:`update` under the same names. For each
    name ``m``, ``not-m`` (the pixels outside it) is all minus ``m``, since counts add over
    disjoint pixels.

    Args:
        num_classes: Number of classes.
        masks: ``{name: mask}``: (H, W) masks used for every batch, or names only (a sequence)
            whose masks come with each batch.
        ignore_index: Target value that is never counted.

    Example:
        >>> counts = MaskedConfusions(2, {"left": torch.tensor([[True, False]])})
        >>> target = torch.tensor([[[0, 1]]])
        >>> counts.update(torch.tensor([[[0, 0]]]), target)
        >>> {name: round(value, 2) for name, value in counts.mious().items()}
        {'all': 0.25, 'left': 1.0, 'not-left': 0.0}
        >>> counts.region("left")
        RegionMIoU(all=0.25, inside=1.0, outside=0.0)
    """

    def __init__(
        self,
        num_classes: int,
        masks: Mapping[str, torch.Tensor] | Sequence[str] = (),
        ignore_index: int = IGNORE_INDEX,
    ):
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.ignore_index = ignore_index
        fixed = dict(masks) if isinstance(masks, Mapping) else dict.fromkeys(masks)
        self.names = ["all", *fixed]
        self.masks = [None, *fixed.values()]
        self.counts = torch.zeros(len(self.names), num_classes, num_classes, dtype=torch.long)

    def update(
        self,
        preds: torch.Tensor,
        targets: torch.Tensor,
        masks: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """Count (N, H, W) predictions against targets (``ignore_index`` not counted).

        ``masks`` gives this batch's (N or 1, H, W) mask for names without a fixed one.

        Raises:
            ValueError: If shapes differ, a class id is out of range or a mask is missing.
        """
        for index, (name, mask) in enumerate(zip(self.names, self.masks, strict=True)):
            if index and mask is None:
                if masks is None or name not in masks:
                    raise ValueError(f"the mask {name!r} is given with each batch; got none")
                mask = masks[name]
            matrix = ConfusionMatrix(self.num_classes, self.ignore_index)
            matrix.update(preds, targets, mask)
            self.counts[index] += matrix.matrix

    def matrix(self, name: str) -> ConfusionMatrix:
        """The confusion matrix of ``name``: ``"all"``, a mask's name or ``"not-<name>"``."""
        matrix = ConfusionMatrix(self.num_classes, self.ignore_index)
        if name.startswith("not-"):
            matrix.matrix = self.counts[0] - self.counts[self.names.index(name[4:])]
        else:
            matrix.matrix = self.counts[self.names.index(name)].clone()
        return matrix

    def mious(self) -> dict[str, float]:
        """MIoU of all pixels, of each mask and of each mask's complement."""
        names = self.names + [f"not-{name}" for name in self.names[1:]]
        return {name: self.matrix(name).miou() for name in names}

    def region(self, name: str) -> RegionMIoU:
        """MIoU on all pixels, inside the mask ``name`` and outside it."""
        return RegionMIoU(
            self.matrix("all").miou(), self.matrix(name).miou(), self.matrix(f"not-{name}").miou()
        )


def region_miou(
    preds: torch.Tensor,
    targets: torch.Tensor,
    region: RegionLike,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> RegionMIoU:
    """Return mIoU on all pixels, inside ``region`` and outside it.

    Each mIoU averages the IoU of the classes present (in targets or predictions) in that part of
    the image, accumulated over the whole batch.

    Args:
        preds: (N, H, W) predicted class ids.
        targets: (N, H, W) target class ids; ``ignore_index`` pixels are not counted.
        region: Region name or mask.
        num_classes: Number of classes.
        ignore_index: Target value to ignore.

    Example:
        >>> t = torch.tensor([[[0, 0, 1, 1]]])
        >>> p = torch.tensor([[[1, 1, 1, 1]]])
        >>> r = region_miou(p, t, torch.tensor([[True, True, False, False]]), 2)
        >>> round(r.all, 3), r.inside, r.outside
        (0.25, 0.0, 1.0)
    """
    mask = as_mask(region, tuple(targets.shape[-2:]), targets.shape[0], targets.device)
    confusion = MaskedConfusions(num_classes, ["region"], ignore_index)
    confusion.update(preds, targets, {"region": mask})
    return confusion.region("region")


def changed_fraction(
    clean_preds: torch.Tensor,
    adv_preds: torch.Tensor,
    region: RegionLike | None = None,
    targets: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> float:
    """Fraction of pixels (inside ``region``, if given) whose predicted class changed.

    Pixels whose target is ``ignore_index`` are skipped when ``targets`` is given.

    Example:
        >>> clean, adv = torch.tensor([[[0, 1]]]), torch.tensor([[[0, 0]]])
        >>> changed_fraction(clean, adv), changed_fraction(clean, adv, torch.tensor([[True, False]]))
        (0.5, 0.0)
    """
    valid = torch.ones_like(clean_preds, dtype=torch.bool)
    if targets is not None:
        valid = targets != ignore_index
    inside = torch.ones_like(valid)
    if region is not None:
        inside = as_mask(region, tuple(clean_preds.shape[-2:]), clean_preds.shape[0], valid.device)
    changed, counted = changed_pixels(adv_preds, clean_preds, valid, inside.expand_as(valid))
    total = int(counted[:, 0].sum())
    return float(changed[:, 0].sum()) / total if total else float("nan")


def changed_pixels(
    predicted: torch.Tensor, clean: torch.Tensor, valid: torch.Tensor, inside: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the valid pixels whose class changed, and the valid pixels, inside and outside.

    Args:
        predicted: (N, H, W) classes after the attack.
        clean: (N, H, W) classes before it.
        valid: (N, H, W) bool, the pixels counted (e.g. ``labels != 255``).
        inside: (N, H, W) or (H, W) bool region.

    Returns:
        ``(changed, counted)``, each (N, 2) long: column 0 inside, column 1 outside.

    Example:
        >>> clean = torch.zeros(1, 2, 2, dtype=torch.long)
        >>> inside = torch.tensor([[True, True], [False, False]])
        >>> changed, counted = changed_pixels(torch.tensor([[[1, 0], [1, 1]]]), clean, clean == 0, inside)
        >>> changed.tolist(), counted.tolist()
        ([[1, 2]], [[2, 2]])
    """
    check_class_map(predicted, "predicted")
    check_class_map(clean, "clean")
    for name, other in (("clean", clean), ("valid", valid)):
        if other.shape != predicted.shape:
            raise ValueError(
                f"{name} must have the shape of the predicted classes {tuple(predicted.shape)}; "
                f"got {tuple(other.shape)}"
            )
    differs = predicted != clean
    changed, counted = [], []
    for where in (inside & valid, ~inside & valid):
        changed.append((differs & where).flatten(1).sum(dim=1))
        counted.append(where.flatten(1).sum(dim=1))
    return torch.stack(changed, dim=1), torch.stack(counted, dim=1)


def changed_fractions(
    predicted: torch.Tensor, clean: torch.Tensor, valid: torch.Tensor, inside: torch.Tensor
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Per image, the fraction of valid pixels whose class changed inside and outside ``inside``.

    Returns:
        ``((inside, outside) fractions, (inside, outside) valid pixel counts)``, each (N,); a
        side without valid pixels has fraction 0 (see :func:`changed_pixels` for the counts).

    Example:
        >>> clean = torch.zeros(1, 2, 2, dtype=torch.long)
        >>> inside = torch.tensor([[[True, True], [False, False]]])
        >>> predicted = torch.tensor([[[1, 0], [1, 1]]])
        >>> [f.tolist() for f in changed_fractions(predicted, clean, clean == 0, inside)[0]]
        [[0.5], [1.0]]
    """
    changed, counted = changed_pixels(predicted, clean, valid, inside)
    fractions = changed / counted.clamp_min(1)
    return (fractions[:, 0], fractions[:, 1]), (counted[:, 0], counted[:, 1])


def hiding_measures(
    clean: torch.Tensor,
    predicted: torch.Tensor,
    classes: object,
    target: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per image, how well ``classes`` were hidden: the measures of a class-hiding attack.

    The hidden pixels are the valid pixels the clean prediction gives one of ``classes``.

    * ``hidden``: fraction of them no longer predicted as any of ``classes``;
    * ``target_match``: fraction of them predicted as ``target`` (the dynamic target of
      :func:`~regionattack.hide_target`; NaN without a target);
    * ``changed_outside``: fraction of the other valid pixels whose class changed;
    * ``pixels`` / ``outside_pixels``: the numbers of hidden pixels (0: the image has none of
      the classes, and its fractions are NaN) and of other valid pixels; ``hidden_pixels``,
      ``matched_pixels`` and ``changed_pixels`` the counts behind the three fractions (to sum
      over images).

    Args:
        clean: (N, H, W) classes before the attack.
        predicted: (N, H, W) classes after it.
        classes: A class id or a sequence of ids.
        target: (N, H, W) classes the hidden pixels should take, or None.
        valid: (N, H, W) bool pixels that count (e.g. ``labels != 255``); all when None.

    Example:
        >>> clean = torch.tensor([[[0, 8, 8, 1]]])
        >>> after = torch.tensor([[[0, 0, 8, 2]]])
        >>> m = hiding_measures(clean, after, 8, target=torch.tensor([[[0, 0, 1, 1]]]))
        >>> [round(float(m[k][0]), 3) for k in ("hidden", "target_match", "changed_outside")]
        [0.5, 0.5, 0.5]
    """
    valid = torch.ones_like(clean, dtype=torch.bool) if valid is None else valid
    inside = of_classes(clean, classes)
    changed, counted = changed_pixels(predicted, clean, valid, inside)
    inside = inside & valid
    if target is not None and tuple(target.shape) != tuple(clean.shape):
        raise ValueError(
            f"target must have the shape of the class maps {tuple(clean.shape)}; "
            f"got {tuple(target.shape)}"
        )
    hidden = (~of_classes(predicted, classes) & inside).flatten(1).sum(1)
    matched = None
    if target is not None:
        matched = ((predicted == check_class_map(target, "target")) & inside).flatten(1).sum(1)

    def fraction(count: torch.Tensor | None, total: torch.Tensor) -> torch.Tensor:
        if count is None:
            return torch.full(total.shape, float("nan"), dtype=torch.float64)
        return torch.where(total > 0, count / total.clamp_min(1), float("nan")).double()

    return {
        "hidden": fraction(hidden, counted[:, 0]),
        "target_match": fraction(matched, counted[:, 0]),
        "changed_outside": fraction(changed[:, 1], counted[:, 1]),
        "pixels": counted[:, 0],
        "outside_pixels": counted[:, 1],
        "hidden_pixels": hidden,
        "matched_pixels": torch.zeros_like(hidden) if matched is None else matched,
        "changed_pixels": changed[:, 1],
    }


def region_specificity(clean: RegionMIoU, attacked: RegionMIoU, floor: float = 1e-3) -> float:
    """Drop of mIoU inside the region divided by the drop outside it.

    The outside drop is floored at ``floor`` (so an attack that leaves the outside untouched scores
    ``drop_inside / floor`` instead of infinity). Larger is more region-specific.

    Example:
        >>> region_specificity(RegionMIoU(0.8, 0.8, 0.8), RegionMIoU(0.6, 0.4, 0.78))
        20.0
    """
    drop_inside = clean.inside - attacked.inside
    drop_outside = clean.outside - attacked.outside
    return round(drop_inside / max(drop_outside, floor), 6)


def spearman_correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors (ties get their average rank).

    Returns NaN when either input is constant or has fewer than two values.

    Example:
        >>> x, y = torch.tensor([1.0, 1.0, 3.0, 4.0]), torch.tensor([10.0, 30.0, 20.0, 5.0])
        >>> round(spearman_correlation(x, y), 4)  # scipy.stats.spearmanr gives -0.6325
        -0.6325
    """
    x, y = x.flatten().double(), y.flatten().double()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same size; got {x.numel()} and {y.numel()}")
    if not bool(torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("x and y must be finite; a NaN or infinite value has no rank")
    if x.numel() < 2:
        return float("nan")
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = float(rx.norm() * ry.norm())
    return float((rx * ry).sum()) / denominator if denominator > 0 else float("nan")


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 of ``values``, tied values sharing the mean of their ranks."""
    order = values.argsort(stable=True)
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(values.numel(), dtype=values.dtype)
    unique, inverse = values.unique(return_inverse=True)
    sums = torch.zeros(unique.numel(), dtype=values.dtype).index_add_(0, inverse, ranks)
    counts = torch.zeros(unique.numel(), dtype=values.dtype).index_add_(
        0, inverse, torch.ones_like(ranks)
    )
    return (sums / counts)[inverse]
