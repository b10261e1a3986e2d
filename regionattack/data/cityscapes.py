"""Cityscapes (fine annotations) in its released layout, with labelIds mapped to the 19 trainIds.

Under ``root``, ``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` holds the RGB images and
``gtFine/<split>/<city>/<name>_gtFine_labelIds.png`` the single-channel label maps of
Cityscapes labelIds (0-33). They are mapped to the 19 evaluation classes of
:data:`CITYSCAPES_CLASSES` (trainIds 0-18) with :data:`LABEL_TO_TRAIN_ID`, the table of the official
cityscapesScripts; every other labelId becomes 255, the ignore index used across regionattack.

File discovery builds on :class:`torchvision.datasets.Cityscapes`; items are ordered by city, then
file name. Nothing is downloaded, and archives are never extracted.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torchvision

from regionattack._checks import IGNORE_INDEX, check_choice
from regionattack.data._io import LabelledImages, shown

#: The 19 Cityscapes training classes, in train-id order.
CITYSCAPES_CLASSES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic_light",
    "traffic_sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"

# labelId -> trainId of the evaluated classes (cityscapesScripts' helpers/labels.py).
_TRAIN_IDS = {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}


def _label_to_train_id() -> np.ndarray:
    table = np.full(256, IGNORE_INDEX, np.uint8)
    for label_id, train_id in _TRAIN_IDS.items():
        table[label_id] = train_id
    table.flags.writeable = False
    return table


LABEL_TO_TRAIN_ID = _label_to_train_id()
"""Read-only uint8 numpy array of 256 entries: ``LABEL_TO_TRAIN_ID[label_id]`` is the trainId.

The 19 evaluated labelIds map to 0-18; all others (unlabeled 0, the void classes 1-6, parking,
rail track, guard rail, bridge, tunnel, polegroup, caravan, trailer, license plate -1 = 255 in a
uint8 file, and any value above 33) map to 255.

Example:
    >>> LABEL_TO_TRAIN_ID[[7, 26, 33, 0, 9, 255]].tolist()
    [0, 13, 18, 255, 255, 255]
"""


def cityscapes_pairs(root: str | os.PathLike, split: str = "val") -> list[tuple[Path, Path]]:
    """List the (image, labelIds) file pairs of a Cityscapes split, ordered by city and name.

    Args:
        root: Folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: One of ``"train"``, ``"val"``, ``"test"``.

    Returns:
        ``(image_path, label_path)`` tuples. Files in a city folder that do not end in
        ``_leftImg8bit.png`` are ignored.

    Raises:
        FileNotFoundError: If ``root``, ``leftImg8bit/<split>`` or ``gtFine/<split>`` is missing.
        ValueError: If ``split`` is unknown, ``leftImg8bit/<split>`` holds a file instead of only
            city folders, the split has no images, or an image has no labelIds file.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for top in ("leftImg8bit", "gtFine"):
        ...     (root / top / "val" / "ulm").mkdir(parents=True)
        >>> Image.new("RGB", (4, 2)).save(root / "leftImg8bit/val/ulm/ulm_0_19_leftImg8bit.png")
        >>> Image.new("L", (4, 2)).save(root / "gtFine/val/ulm/ulm_0_19_gtFine_labelIds.png")
        >>> [(image.parent.name, label.name) for image, label in cityscapes_pairs(root, "val")]
        [('ulm', 'ulm_0_19_gtFine_labelIds.png')]
    """
    split = check_choice(split, "split", SPLITS)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Cityscapes root folder not found: {root}")
    layout = (
        f"expected leftImg8bit/{split}/<city>/*{IMAGE_SUFFIX} and "
        f"gtFine/{split}/<city>/*{LABEL_SUFFIX} under {root}"
    )
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    for folder, what in ((image_dir, "image"), (label_dir, "label")):
        if not folder.is_dir():
            raise FileNotFoundError(f"Cityscapes {what} folder not found: {folder} ({layout})")
    files = sorted(path.name for path in image_dir.iterdir() if not path.is_dir())
    if files:
        raise ValueError(f"{image_dir} must hold only city folders; found file(s) {shown(files)}")
    # The folders exist, so torchvision neither raises nor looks for archives to extract.
    found = torchvision.datasets.Cityscapes(
        str(root), split=split, mode="fine", target_type="semantic"
    )
    pairs = sorted(
        (Path(image), Path(targets[0]))
        for image, targets in zip(found.images, found.targets, strict=True)
        if image.endswith(IMAGE_SUFFIX)
    )
    if not pairs:
        raise ValueError(f"no images <city>/*{IMAGE_SUFFIX} found in {image_dir} ({layout})")
    missing = [image for image, label in pairs if not label.is_file()]
    if missing:
        raise ValueError(
            f"{len(missing)} image(s) in {image_dir} have no label "
            f"{label_dir}/<city>/<name>{LABEL_SUFFIX}: "
            f"{shown([f'{image.parent.name}/{image.name}' for image in missing])}"
        )
    return pairs


class Cityscapes(LabelledImages):
    """Cityscapes (fine) as a map-style dataset of ``(image, trainId label)`` pairs.

    Images are float32 (3, H, W) in [0, 1]; labels are int64 (H, W) trainIds 0-18 of
    :data:`CITYSCAPES_CLASSES`, with 255 for every labelId that is not evaluated (see
    :data:`LABEL_TO_TRAIN_ID`). The public test split has no annotations, so its labels are all 255.
    With ``size`` set, images are resized bilinearly (antialiased, as PIL does when shrinking) and
    labels with nearest neighbour. Items are ordered by city, then file name.

    Args:
        root: Folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: One of ``"train"``, ``"val"``, ``"test"``.
        size: Output (height, width), or ``None`` to keep the files' size (2048x1024 for the
            release, so every item has the same shape).
        max_images: Keep only the first ``max_images`` pairs (``None``: all).

    Raises:
        FileNotFoundError: If a folder is missing (see :func:`cityscapes_pairs`).
        ValueError: If the split is unknown or incomplete, or ``size``/``max_images`` is invalid.
            A label file of another mode than L/P, or of another size than its image, raises
            ``ValueError`` when its item is loaded.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "leftImg8bit" / "val" / "bonn").mkdir(parents=True)
        >>> (root / "gtFine" / "val" / "bonn").mkdir(parents=True)
        >>> Image.new("RGB", (8, 4)).save(root / "leftImg8bit/val/bonn/bonn_0_0_leftImg8bit.png")
        >>> label_ids = np.array([[7, 7, 26, 26, 0, 0, 33, 33]] * 4, np.uint8)
        >>> Image.fromarray(label_ids).save(root / "gtFine/val/bonn/bonn_0_0_gtFine_labelIds.png")
        >>> image, label = Cityscapes(root, "val", size=(2, 4))[0]
        >>> tuple(image.shape), label.tolist()
        ((3, 2, 4), [[0, 13, 255, 18], [0, 13, 255, 18]])
    """

    classes = CITYSCAPES_CLASSES
    _table = LABEL_TO_TRAIN_ID
    _rule = "Cityscapes labelIds files hold values 0-255"  # never raised: every value maps
    _find_pairs = staticmethod(cityscapes_pairs)

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "val",
        size: tuple[int, int] | None = None,
        max_images: int | None = None,
    ):
        super().__init__(root, split, size, max_images)
