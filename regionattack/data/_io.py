"""Shared loading for the file-based dataset adapters (CamVid, Cityscapes, PASCAL VOC).

Every adapter pairs image files with single-channel label PNGs, turns images into float32
(3, H, W) tensors in [0, 1] and labels into int64 (H, W) class ids through a 256-entry lookup
table (255 = ignore), and resizes both to an optional ``size``: images bilinearly (antialiased, as
PIL does when shrinking), labels with nearest neighbour so that no new ids appear.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from regionattack._checks import IGNORE_INDEX, check_positive_int


def check_size(size: object, optional: bool = True) -> tuple[int, int] | None:
    """Return ``size`` as a (height, width) tuple of positive ints, or ``None`` if ``optional``.

    Example:
        >>> check_size([4, 6]), check_size(None)
        ((4, 6), None)
    """
    if size is None and optional:
        return None
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
        allowed = "None or (height, width)" if optional else "(height, width)"
        raise ValueError(f"size must be {allowed}; got {size!r}")
    return check_positive_int(size[0], "height"), check_positive_int(size[1], "width")


def check_max_images(max_images: object) -> int | None:
    """Return ``max_images`` if it is ``None`` or a positive int."""
    if max_images is None:
        return None
    return check_positive_int(max_images, "max_images")


def shown(names: Sequence[str], limit: int = 5) -> str:
    """Join the first ``limit`` names for an error message, counting the rest.

    Example:
        >>> shown(["a", "b", "c"], limit=2)
        'a, b and 1 more'
    """
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def lookup_table(mapping: dict[int, int]) -> np.ndarray:
    """Build a read-only 256-entry int16 table: ``mapping`` plus 255 -> 255, others -1 (invalid).

    Example:
        >>> table = lookup_table({0: 0, 11: 255})
        >>> table[[0, 11, 255, 12]].tolist()
        [0, 255, 255, -1]
    """
    table = np.full(256, -1, np.int16)
    table[IGNORE_INDEX] = IGNORE_INDEX
    for value, target in mapping.items():
        table[value] = target
    table.flags.writeable = False
    return table


@contextlib.contextmanager
def _decoded(path: Path, what: str) -> Iterator[Image.Image]:
    """Open ``path`` with Pillow; a file it cannot decode is a ValueError naming the file.

    Pillow reads lazily, so a truncated file fails inside the block: the block is covered too.
    """
    try:
        with Image.open(path) as image:
            yield image
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        if isinstance(error, OSError) and not isinstance(error, UnidentifiedImageError):
            if error.errno is not None:  # the file system's error (permissions, missing), as is
                raise
        raise ValueError(
            f"cannot decode {what} {path}: {error} (truncated or not an image?)"
        ) from None


def load_image(path: Path, size: tuple[int, int] | None) -> tuple[torch.Tensor, tuple[int, int]]:
    """Return the image as float (3, H, W) in [0, 1] and its size on disk as (width, height).

    Raises:
        ValueError: Naming the file, if Pillow cannot decode it (truncated, or not an image).
    """
    with _decoded(path, "image") as image:
        original = image.size
        image = image.convert("RGB")
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        array = np.array(image, dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255), original


def load_label(
    path: Path,
    size: tuple[int, int] | None,
    expected: tuple[int, int],
    table: np.ndarray,
    rule: str,
) -> torch.Tensor:
    """Load a single-channel label PNG, resize it (nearest) and map its values through ``table``.

    Args:
        path: Label PNG of mode ``L`` or ``P`` (palette indices are the values).
        size: Output (height, width), or ``None`` to keep the file's size.
        expected: The image's size on disk as (width, height); the label must match it.
        table: 256-entry integer lookup table from file value to class id; -1 marks invalid values.
        rule: End of the error message for invalid values, e.g. "labels must be ...".

    Returns:
        int64 (H, W) tensor of class ids, 255 = ignore.

    Raises:
        ValueError: If the label cannot be decoded, has another mode or size than expected, or
            holds a value whose table entry is negative.
    """
    with _decoded(path, "label") as label:
        if label.mode not in ("L", "P"):
            raise ValueError(
                f"label {path} must be a single-channel PNG (mode L or P) of class ids; "
                f"got mode {label.mode}"
            )
        if label.size != expected:
            raise ValueError(
                f"label {path} is {label.size[0]}x{label.size[1]} (WxH) but its image is "
                f"{expected[0]}x{expected[1]}"
            )
        if size is not None and label.size != (size[1], size[0]):
            label = label.resize((size[1], size[0]), Image.NEAREST)
        array = np.asarray(label, dtype=np.uint8)
    mapped = table[array]
    bad = mapped < 0
    if bool(bad.any()):
        raise ValueError(f"label {path} holds value {int(array[bad].max())}; {rule}")
    return torch.from_numpy(mapped.astype(np.int64))


class LabelledImages(Dataset):
    """Base of the file-based adapters: ``(image, label)`` items from a list of file pairs.

    Subclasses set ``classes``, ``_table`` (see :func:`load_label`), ``_rule`` and implement
    ``_find_pairs(root, split)``, which validates ``split`` and returns the ordered file pairs.
    """

    classes: tuple[str, ...] = ()
    _table: np.ndarray
    _rule: str

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        size: tuple[int, int] | None,
        max_images: int | None,
    ):
        self.root = Path(root)
        self.split = split
        self.size = check_size(size)
        max_images = check_max_images(max_images)
        self.pairs = self._find_pairs(self.root, split)[:max_images]

    @staticmethod
    def _find_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.pairs[index]
        image, original = load_image(image_path, self.size)
        return image, load_label(label_path, self.size, original, self._table, self._rule)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
            f"size={self.size}, images={len(self)})"
        )
