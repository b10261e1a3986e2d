"""Region masks: named halves, grid cells, boxes and user masks.

A region is a bool mask over the image grid; ``True`` marks pixels inside the region. Everything in
regionattack that takes ``region=`` accepts a mask (torch, numpy or PIL; (H, W), (N, H, W) or
(N, 1, H, W); bool or {0, 1}) or one of the names in :data:`NAMES`, and turns it into a mask with
:func:`as_mask`.
"""

from __future__ import annotations

import operator
from typing import Union

import numpy as np
import torch

from regionattack._checks import check_class_map, check_positive_int

__all__ = [
    "as_mask",
    "box",
    "class_ids",
    "describe",
    "grid_cell",
    "grid_cells",
    "named",
    "nearest_outside",
    "num_masks",
    "of_classes",
]

_CHUNK = 1 << 23  # elements of one (rows, W, W) block of nearest_outside's row pass


NAMES = ("left", "right", "top", "bottom", "center")

RegionLike = Union[str, torch.Tensor, np.ndarray, "PIL.Image.Image"]  # noqa: F821


def _index(value: object, name: str) -> int:
    """``value`` as an int if it is an integer (Python, numpy or 0-dim integer tensor), not bool."""
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, torch.Tensor) and value.dtype == torch.bool
    ):
        raise TypeError(f"{name} must be an int (a pixel index); got bool {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must be an int (a pixel index); got {type(value).__name__} {value!r}"
        ) from None


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
        raise ValueError(f"size must be (height, width); got {size!r}")
    height, width = _index(size[0], "height"), _index(size[1], "width")
    return check_positive_int(height, "height"), check_positive_int(width, "width")


def box(size: tuple[int, int], top: int, left: int, bottom: int, right: int) -> torch.Tensor:
    """Return a mask that selects the pixels ``[top:bottom, left:right]``.

    The bounds are pixel indices (ints), not fractions of the size: for a box a quarter of the
    image in, compute ``round(height / 4)``.

    Args:
        size: Grid size (height, width), positive ints.
        top: First row inside the box (an int).
        left: First column inside the box (an int).
        bottom: First row below the box (exclusive, an int).
        right: First column right of the box (exclusive, an int).

    Returns:
        Bool tensor of shape ``size``.

    Raises:
        TypeError: If a size or bound is not an int (a float, a bool, a string ...).
        ValueError: If the box is empty or leaves the grid, or a size is not positive.

    Example:
        >>> box((3, 4), 0, 1, 2, 3).int().tolist()
        [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    height, width = _check_size(size)
    top, left = _index(top, "top"), _index(left, "left")
    bottom, right = _index(bottom, "bottom"), _index(right, "right")
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise ValueError(
            f"box must satisfy 0 <= top < bottom <= {height} and 0 <= left < right <= {width}; "
            f"got top={top}, left={left}, bottom={bottom}, right={right}"
        )
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def named(name: str, size: tuple[int, int]) -> torch.Tensor:
    """Return the mask of a named region.

    ``"left"``/``"right"`` are the halves split at ``width // 2``, ``"top"``/``"bottom"`` at
    ``height // 2`` (the right and bottom halves take the odd pixel), and ``"center"`` is the middle
    box from a quarter to three quarters of the height and of the width (rounded; the paper's
    central measurement region).

    Args:
        name: One of ``"left"``, ``"right"``, ``"top"``, ``"bottom"``, ``"center"``.
        size: Grid size (height, width); each side at least 2.

    Returns:
        Bool tensor of shape ``size``.

    Raises:
        ValueError: If ``name`` is unknown or the grid is too small to split.

    Example:
        >>> named("left", (2, 4)).int().tolist()
        [[1, 1, 0, 0], [1, 1, 0, 0]]
    """
    height, width = _check_size(size)
    if name not in NAMES:
        raise ValueError(f"region name must be one of {list(NAMES)}; got {name!r}")
    if height < 2 or width < 2:
        raise ValueError(f"named regions need a grid of at least 2x2; got {height}x{width}")
    if name == "left":
        return box(size, 0, 0, height, width // 2)
    if name == "right":
        return box(size, 0, width // 2, height, width)
    if name == "top":
        return box(size, 0, 0, height // 2, width)
    if name == "bottom":
        return box(size, height // 2, 0, height, width)
    top, left = round(height / 4), round(width / 4)
    return box(
        size, top, left, max(top + 1, round(3 * height / 4)), max(left + 1, round(3 * width / 4))
    )


def grid_cell(size: tuple[int, int], rows: int, cols: int, index: int) -> torch.Tensor:
    """Return the mask of one cell of a ``rows x cols`` grid, numbered row by row from 0.

    Cell borders are at ``round(i * height / rows)`` and ``round(j * width / cols)``, so the cells
    tile the image exactly.

    Args:
        size: Grid size (height, width).
        rows: Number of cell rows, at most the height.
        cols: Number of cell columns, at most the width.
        index: Cell number in ``[0, rows * cols)``.

    Returns:
        Bool tensor of shape ``size``.

    Raises:
        ValueError: If the grid does not fit or ``index`` is out of range.

    Example:
        >>> grid_cell((2, 4), 1, 2, 1).int().tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    height, width = _check_size(size)
    rows, cols = check_positive_int(rows, "rows"), check_positive_int(cols, "cols")
    if rows > height or cols > width:
        raise ValueError(f"a {rows}x{cols} grid does not fit a {height}x{width} image")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < rows * cols:
        raise ValueError(f"index must be an int in [0, {rows * cols}); got {index!r}")
    row, col = divmod(index, cols)
    return box(
        size,
        round(row * height / rows),
        round(col * width / cols),
        round((row + 1) * height / rows),
        round((col + 1) * width / cols),
    )


def grid_cells(size: tuple[int, int], rows: int, cols: int) -> torch.Tensor:
    """Return all cells of a ``rows x cols`` grid as a (rows * cols, H, W) bool tensor.

    Example:
        >>> grid_cells((4, 4), 2, 2).sum(dim=(1, 2)).tolist()
        [4, 4, 4, 4]
    """
    return torch.stack([grid_cell(size, rows, cols, i) for i in range(rows * cols)])


def _to_tensor(region: object) -> torch.Tensor:
    if isinstance(region, torch.Tensor):
        return region.detach()
    if isinstance(region, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(region))
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(region, Image.Image):
        return torch.from_numpy(np.array(region.convert("L")) > 0)
    raise TypeError(
        "region must be a name, a torch.Tensor, a numpy array or a PIL image; "
        f"got {type(region).__name__}"
    )


def as_mask(
    region: RegionLike,
    size: tuple[int, int],
    batch: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Turn a region name or user mask into a validated bool mask.

    Args:
        region: A name from :data:`NAMES` or a mask of shape (H, W), (N, H, W) or (N, 1, H, W),
            bool or holding only 0 and 1.
        size: The image size (height, width) the mask must match.
        batch: Batch size; a per-sample mask must have this many masks. ``None`` accepts any.
        device: Device of the returned mask (default: the mask's own, CPU for names).

    Returns:
        Bool tensor of shape (1, H, W) for a shared mask or (N, H, W) for per-sample masks.

    Raises:
        ValueError: If the mask is empty (for any sample), not binary, contains NaN, or its shape
            does not match ``size`` / ``batch``.
        TypeError: If ``region`` is of an unsupported type.

    Example:
        >>> as_mask("right", (2, 2)).int().tolist()
        [[[0, 1], [0, 1]]]
        >>> as_mask(torch.tensor([[1, 0], [0, 0]]), (2, 2)).shape
        torch.Size([1, 2, 2])
    """
    height, width = _check_size(size)
    if isinstance(region, str):
        mask = named(region, (height, width))[None]
    else:
        mask = _to_tensor(region)
        if mask.ndim == 4 and mask.shape[1] == 1:
            mask = mask[:, 0]
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3 or tuple(mask.shape[-2:]) != (height, width):
            raise ValueError(
                f"region mask must be (H, W), (N, H, W) or (N, 1, H, W) with (H, W) = "
                f"{(height, width)}; got shape {tuple(_to_tensor(region).shape)}"
            )
        if mask.dtype != torch.bool:
            if mask.is_floating_point() and bool(torch.isnan(mask).any()):
                raise ValueError("region mask contains NaN")
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("region mask must be bool or hold only 0 and 1")
            mask = mask != 0
    if batch is not None and mask.shape[0] not in (1, batch):
        raise ValueError(f"region mask has {mask.shape[0]} masks but the batch has {batch} images")
    empty = ~mask.flatten(1).any(dim=1)
    if bool(empty.any()):
        raise ValueError(
            f"region mask is empty (no pixel selected) for sample(s) {empty.nonzero()[:, 0].tolist()}"
        )
    return mask.to(device) if device is not None else mask


def num_masks(region: RegionLike) -> int:
    """Number of masks a region holds: N for per-sample (N, H, W) masks, else 1.

    Example:
        >>> num_masks("left"), num_masks(torch.ones(4, 4)), num_masks(torch.ones(3, 1, 4, 4))
        (1, 1, 3)
    """
    if isinstance(region, str):
        return 1
    mask = _to_tensor(region)
    return int(mask.shape[0]) if mask.ndim >= 3 else 1


def describe(region: RegionLike | None) -> str:
    """Return a short text describing a region, for rankings and reports.

    Example:
        >>> describe("left"), describe(None), describe(torch.ones(2, 3, dtype=torch.bool))
        ('left', 'overall', 'mask(6 of 6 px)')
    """
    if region is None:
        return "overall"
    if isinstance(region, str):
        return region
    mask = _to_tensor(region)
    return f"mask({int((mask != 0).sum())} of {mask.numel()} px)"


def class_ids(classes: object) -> torch.Tensor:
    """``classes`` (an int or a sequence of ints) as a 1-D long tensor of distinct ids >= 0.

    Example:
        >>> class_ids(8).tolist(), class_ids([8, 9]).tolist()
        ([8], [8, 9])
    """
    values = [classes] if isinstance(classes, int) or np.ndim(classes) == 0 else list(classes)
    ids = [_index(value, "class id") for value in values]
    if not ids:
        raise ValueError("classes must name at least one class id")
    if min(ids) < 0:
        raise ValueError(f"class ids must be >= 0; got {ids}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"class ids must be distinct; got {ids}")
    return torch.tensor(ids, dtype=torch.long)


def of_classes(class_map: torch.Tensor, classes: int | object) -> torch.Tensor:
    """Per-sample masks of the pixels whose class is one of ``classes``.

    A sample without those classes gets an empty mask (use it to skip the sample: regions given
    to an attack must not be empty).

    Args:
        class_map: (N, H, W) integer class ids, e.g. a clean prediction.
        classes: A class id or a sequence of ids.

    Returns:
        (N, H, W) bool masks on the class map's device.

    Example:
        >>> of_classes(torch.tensor([[[0, 8], [9, 1]]]), [8, 9]).int().tolist()
        [[[0, 1], [1, 0]]]
    """
    class_map = check_class_map(class_map, "class_map")
    if class_map.ndim != 3:
        raise ValueError(f"class_map must be (N, H, W); got shape {tuple(class_map.shape)}")
    return torch.isin(class_map, class_ids(classes).to(class_map.device))


def nearest_outside(region: torch.Tensor) -> torch.Tensor:
    """For every pixel, the flat index (``row * W + column``) of the nearest pixel outside ``region``.

    Nearest in Euclidean distance (exact; ties go to the lowest column, then the row found
    first); a pixel outside the region is its own nearest. An image whose region covers every
    pixel has no pixel outside: its indices are -1. Two passes: along each column, the nearest
    outside row above and below; then, along each row, the column that minimises the squared
    distance (the separable distance transform, with the argmin kept).

    Args:
        region: (N, H, W) bool masks.

    Returns:
        (N, H, W) long indices into the flattened (H * W) image.

    Example:
        >>> inside = torch.tensor([[[False, True, True]]])
        >>> nearest_outside(inside).tolist()
        [[[0, 0, 0]]]
    """
    if not isinstance(region, torch.Tensor) or region.dtype != torch.bool or region.ndim != 3:
        raise ValueError("region must be an (N, H, W) bool tensor")
    n, height, width = region.shape
    device = region.device
    outside = ~region
    rows = torch.arange(height, device=device).view(1, height, 1).expand(n, height, width)
    above = torch.where(outside, rows, -1).cummax(dim=1).values
    below = torch.where(outside, rows, height).flip(1).cummin(dim=1).values.flip(1)
    inf = float("inf")
    up = torch.where(above >= 0, (rows - above).float(), inf)
    down = torch.where(below < height, (below - rows).float(), inf)
    source_row = torch.where(up <= down, above, below)  # per column, the nearest outside row
    column_distance = torch.minimum(up, down)
    columns = torch.arange(width, device=device, dtype=torch.float32)
    offsets = (columns[:, None] - columns[None, :]) ** 2  # (W target, W source)
    best = torch.empty(n, height, width, dtype=torch.long, device=device)
    block = max(1, _CHUNK // (width * width))
    for start in range(0, n * height, block):  # rows of all images, a block at a time
        squared = column_distance.view(-1, width)[start : start + block] ** 2
        best.view(-1, width)[start : start + block] = (squared[:, None, :] + offsets).argmin(-1)
    found_row = source_row.gather(2, best)
    index = found_row * width + best
    none_outside = ~outside.flatten(1).any(1)
    return torch.where(none_outside[:, None, None], -1, index)
