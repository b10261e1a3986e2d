"""Look up the file-based datasets by name, and check input sizes against a model's stride.

The registry is fixed: ``"camvid"`` (:class:`~regionattack.data.CamVid`), ``"cityscapes"``
(:class:`~regionattack.data.Cityscapes`) and ``"voc"``
(:class:`~regionattack.data.VOCSegmentation`). Every dataset yields float32 (3, H, W) images in
[0, 1] and int64 (H, W) labels, 255 = ignore, and has a ``classes`` attribute.
"""

from __future__ import annotations

import os

from torch.utils.data import Dataset

from regionattack._checks import check_choice, check_positive_int
from regionattack.data._io import check_size
from regionattack.data.camvid import CamVid
from regionattack.data.cityscapes import Cityscapes
from regionattack.data.voc import VOCSegmentation

#: The dataset names :func:`load_dataset` accepts.
DATASETS = ("camvid", "cityscapes", "voc")
_CLASSES = {"camvid": CamVid, "cityscapes": Cityscapes, "voc": VOCSegmentation}


def _dataset_class(name: object) -> type:
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str; got {type(name).__name__}")
    return _CLASSES[check_choice(name, "dataset", DATASETS)]


def load_dataset(
    name: str,
    root: str | os.PathLike,
    split: str,
    *,
    size: tuple[int, int] | None = None,
    max_images: int | None = None,
) -> Dataset:
    """Open a dataset by name.

    Args:
        name: One of :data:`DATASETS`: ``"camvid"``, ``"cityscapes"``, ``"voc"``.
        root: The dataset's root folder, laid out as its class documents.
        split: A split of that dataset: ``"train"``/``"val"``/``"test"`` for CamVid and
            Cityscapes, ``"train"``/``"val"``/``"trainval"`` for VOC.
        size: Output (height, width), or ``None`` to keep the files' size.
        max_images: Keep only the first ``max_images`` items (``None``: all).

    Returns:
        A map-style dataset of ``(image, label)`` pairs with a ``classes`` attribute.

    Raises:
        ValueError: If ``name`` is unknown (the message lists :data:`DATASETS`), or as the
            dataset's class raises.
        TypeError: If ``name`` is not a string.
        FileNotFoundError: If the dataset's folders are missing.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "val").mkdir(); (root / "valannot").mkdir()
        >>> Image.new("RGB", (8, 6)).save(root / "val" / "a.png")
        >>> Image.new("L", (8, 6), 3).save(root / "valannot" / "a.png")
        >>> data = load_dataset("camvid", root, "val", size=(3, 4))
        >>> len(data), data.classes[3], tuple(data[0][1].shape)
        (1, 'road', (3, 4))
    """
    return _dataset_class(name)(root, split, size=size, max_images=max_images)


def num_classes(name: str) -> int:
    """Return the number of classes a model for dataset ``name`` predicts (255 is not a class).

    Raises:
        ValueError: If ``name`` is unknown.

    Example:
        >>> [num_classes(name) for name in DATASETS]
        [11, 19, 21]
    """
    return len(_dataset_class(name).classes)


def check_size_divisible(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Check that both sides of ``size`` are multiples of a model's output stride.

    Args:
        size: Input (height, width); both positive ints.
        stride: The model's output stride (e.g. 8, 16 or 32); a positive int.

    Returns:
        ``size`` as a (height, width) tuple.

    Raises:
        ValueError: If a side is not a multiple of ``stride``; the message suggests the nearest
            size below (at least ``stride``) that is. Also if ``size`` or ``stride`` is invalid.
        TypeError: If a side or ``stride`` is not an int.

    Example:
        >>> check_size_divisible((96, 128), 16)
        (96, 128)
        >>> check_size_divisible((100, 130), 16)
        Traceback (most recent call last):
        ...
        ValueError: size 100x130 is not divisible by the model's output stride 16; try 96x128
    """
    checked = check_size(size, optional=False)
    assert checked is not None
    stride = check_positive_int(stride, "stride")
    height, width = checked
    if height % stride or width % stride:
        fit = [max(stride, side // stride * stride) for side in checked]
        raise ValueError(
            f"size {height}x{width} is not divisible by the model's output stride {stride}; "
            f"try {fit[0]}x{fit[1]}"
        )
    return checked
