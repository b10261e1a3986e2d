"""PASCAL VOC 2012 semantic segmentation in its released ``VOCdevkit`` layout.

Under ``root``, ``VOCdevkit/VOC2012/JPEGImages/<id>.jpg`` holds the images,
``VOCdevkit/VOC2012/SegmentationClass/<id>.png`` the labels and
``VOCdevkit/VOC2012/ImageSets/Segmentation/<split>.txt`` the ids of each split. Labels are palette
PNGs whose indices are the class ids 0-20 of :data:`VOC_CLASSES` (0 = background) and 255 on object
boundaries and difficult regions, the ignore index used across regionattack.

File discovery builds on :class:`torchvision.datasets.VOCSegmentation`; items follow the order of
``<split>.txt``. Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torchvision

from regionattack._checks import IGNORE_INDEX, check_choice
from regionattack.data._io import LabelledImages, lookup_table, shown

#: The 21 PASCAL VOC classes (background first), in label order.
VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
SPLITS = ("train", "val", "trainval")
BASE_DIR = Path("VOCdevkit") / "VOC2012"


def voc_pairs(root: str | os.PathLike, split: str = "val") -> list[tuple[Path, Path]]:
    r"""List the (image, label) file pairs of a VOC 2012 segmentation split, in list-file order.

    Args:
        root: Folder holding ``VOCdevkit/VOC2012/``.
        split: One of ``"train"``, ``"val"``, ``"trainval"``.

    Returns:
        ``(image_path, label_path)`` tuples for the ids in
        ``VOCdevkit/VOC2012/ImageSets/Segmentation/<split>.txt``; blank lines are skipped.

    Raises:
        FileNotFoundError: If ``root``, ``VOCdevkit/VOC2012``, ``JPEGImages``,
            ``SegmentationClass`` or the split's list file is missing.
        ValueError: If ``split`` is unknown, the list file names no ids, or a listed image or
            label file is missing.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> voc = root / "VOCdevkit" / "VOC2012"
        >>> for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        ...     (voc / folder).mkdir(parents=True)
        >>> for name in ("2007_000033", "2007_000042"):
        ...     Image.new("RGB", (4, 3)).save(voc / "JPEGImages" / f"{name}.jpg")
        ...     Image.new("P", (4, 3)).save(voc / "SegmentationClass" / f"{name}.png")
        >>> _ = (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000042\n2007_000033\n")
        >>> [(image.name, label.name) for image, label in voc_pairs(root, "val")]
        [('2007_000042.jpg', '2007_000042.png'), ('2007_000033.jpg', '2007_000033.png')]
    """
    split = check_choice(split, "split", SPLITS)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"VOC root folder not found: {root}")
    voc = root / BASE_DIR
    list_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
    layout = (
        f"expected {BASE_DIR}/JPEGImages/<id>.jpg, {BASE_DIR}/SegmentationClass/<id>.png and "
        f"{BASE_DIR}/ImageSets/Segmentation/{split}.txt under {root}"
    )
    if not voc.is_dir():
        hint = ""
        if (root / "JPEGImages").is_dir() or (root / "VOC2012").is_dir():
            hint = "; pass the folder that contains VOCdevkit/ as root"
        raise FileNotFoundError(f"VOC folder not found: {voc} ({layout}){hint}")
    for folder in (voc / "JPEGImages", voc / "SegmentationClass"):
        if not folder.is_dir():
            raise FileNotFoundError(f"VOC folder not found: {folder} ({layout})")
    if not list_file.is_file():
        raise FileNotFoundError(f"VOC split list not found: {list_file} ({layout})")
    found = torchvision.datasets.VOCSegmentation(
        str(root), year="2012", image_set=split, download=False
    )
    # A blank line in the list file becomes a path named ".jpg"; skip it.
    pairs = [
        (Path(image), Path(label))
        for image, label in zip(found.images, found.masks, strict=True)
        if Path(image).name != ".jpg"
    ]
    if not pairs:
        raise ValueError(f"no image ids listed in {list_file}")
    for index, what in ((0, "image"), (1, "label")):
        missing = [pair[index].name for pair in pairs if not pair[index].is_file()]
        if missing:
            raise ValueError(
                f"{len(missing)} {what} file(s) listed in {list_file} are missing from "
                f"{pairs[0][index].parent}: {shown(missing)}"
            )
    return pairs


class VOCSegmentation(LabelledImages):
    r"""PASCAL VOC 2012 segmentation as a map-style dataset of ``(image, label)`` pairs.

    Images are float32 (3, H, W) in [0, 1]; labels are int64 (H, W) class ids 0-20 of
    :data:`VOC_CLASSES`, with 255 on boundaries and difficult regions. VOC images differ in size
    (at most 500x500), so with ``size=None`` each item keeps its own size and batching them (e.g.
    with a ``DataLoader``) needs ``size``. With ``size`` set, images are resized bilinearly
    (antialiased, as PIL does when shrinking) and labels with nearest neighbour. Items follow the
    order of ``<split>.txt``.

    Args:
        root: Folder holding ``VOCdevkit/VOC2012/``.
        split: One of ``"train"``, ``"val"``, ``"trainval"``.
        size: Output (height, width), or ``None`` to keep each file's size.
        max_images: Keep only the first ``max_images`` pairs (``None``: all).

    Raises:
        FileNotFoundError: If a folder or the split's list file is missing (see :func:`voc_pairs`).
        ValueError: If the split is unknown or incomplete, or ``size``/``max_images`` is invalid.
            A label file with values other than 0-20 (or 255), another mode than L/P (e.g. an RGB
            colour map), or another size than its image raises ``ValueError`` when its item is
            loaded.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> voc = root / "VOCdevkit" / "VOC2012"
        >>> for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        ...     (voc / folder).mkdir(parents=True)
        >>> Image.new("RGB", (6, 4)).save(voc / "JPEGImages" / "a.jpg")
        >>> label = np.full((4, 6), 255, np.uint8)
        >>> label[1:3, 1:5] = 15
        >>> Image.fromarray(label).convert("P").save(voc / "SegmentationClass" / "a.png")
        >>> _ = (voc / "ImageSets/Segmentation/val.txt").write_text("a\n")
        >>> image, label = VOCSegmentation(root, "val")[0]
        >>> tuple(image.shape), label.unique().tolist(), VOC_CLASSES[15]
        ((3, 4, 6), [15, 255], 'person')
    """

    classes = VOC_CLASSES
    _table = lookup_table({i: i for i in range(len(VOC_CLASSES))})
    _rule = (
        f"VOC labels must be class ids 0-{len(VOC_CLASSES) - 1} or {IGNORE_INDEX} (boundary); "
        "use the palette PNGs of SegmentationClass/"
    )
    _find_pairs = staticmethod(voc_pairs)

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "val",
        size: tuple[int, int] | None = None,
        max_images: int | None = None,
    ):
        super().__init__(root, split, size, max_images)
