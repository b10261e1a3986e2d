"""CamVid in the SegNet layout: ``train/``, ``trainannot/``, ``val/``, ``valannot/``, ``test/``, ...

Each split folder holds RGB images (``.png`` in the original release, ``.jpg`` in re-encoded
copies; both are accepted) and ``<split>annot/`` holds single-channel PNG label maps with the same
file stems. Labels hold the class ids 0-10 of :data:`CAMVID_CLASSES` and :data:`CAMVID_VOID` (11)
for unlabelled pixels, which this module maps to 255, the ignore index used across regionattack.

Files are paired by stem from the folders; ``train.txt``-style lists are not needed. Nothing is
downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from regionattack._checks import IGNORE_INDEX, check_choice
from regionattack.data._io import LabelledImages, lookup_table, shown

#: The 11 CamVid classes of the SegNet layout, in label order (label 11 is void).
CAMVID_CLASSES = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign_symbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)
#: CamVid's void label in the PNG files; the adapters map it to 255 (ignored).
CAMVID_VOID = 11
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Map stem -> path for the files in ``folder`` whose suffix is in ``suffixes``."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if path.stem in found:
            raise ValueError(
                f"two files share the stem {path.stem!r} in {folder}: {found[path.stem].name} "
                f"and {path.name}; keep one"
            )
        found[path.stem] = path
    return found


def camvid_pairs(root: str | os.PathLike, split: str = "train") -> list[tuple[Path, Path]]:
    """List the (image, label) file pairs of a CamVid split, sorted by file stem.

    Args:
        root: Folder holding ``<split>/`` and ``<split>annot/``.
        split: One of ``"train"``, ``"val"``, ``"test"``.

    Returns:
        ``(image_path, label_path)`` tuples. Labels without an image are ignored.

    Raises:
        FileNotFoundError: If ``root``, the image folder or the label folder is missing.
        ValueError: If ``split`` is unknown, the folder has no images, an image has no label, or
            two images share a stem.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "val").mkdir(); (root / "valannot").mkdir()
        >>> Image.new("RGB", (4, 3)).save(root / "val" / "a.png")
        >>> Image.new("L", (4, 3)).save(root / "valannot" / "a.png")
        >>> [(image.name, label.parent.name) for image, label in camvid_pairs(root, "val")]
        [('a.png', 'valannot')]
    """
    split = check_choice(split, "split", SPLITS)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CamVid root folder not found: {root}")
    image_dir, label_dir = root / split, root / f"{split}annot"
    for folder, what in ((image_dir, "image"), (label_dir, "label")):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"CamVid {what} folder not found: {folder} (expected the SegNet layout "
                f"{split}/ and {split}annot/ under {root})"
            )
    images = _files(image_dir, IMAGE_SUFFIXES)
    labels = _files(label_dir, (".png",))
    if not images:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {image_dir}")
    missing = [stem for stem in images if stem not in labels]
    if missing:
        raise ValueError(
            f"{len(missing)} image(s) in {image_dir} have no label <stem>.png in {label_dir}: "
            f"{shown([images[stem].name for stem in missing])}"
        )
    return [(images[stem], labels[stem]) for stem in sorted(images)]


class CamVid(LabelledImages):
    """CamVid (SegNet layout) as a map-style dataset of ``(image, label)`` pairs.

    Images are float32 (3, H, W) in [0, 1]; labels are int64 (H, W) with class ids 0-10 and 255
    for void. With ``size`` set, images are resized bilinearly (antialiased, as PIL does when
    shrinking) and labels with nearest neighbour. Items are ordered by file stem.

    Args:
        root: Folder holding ``<split>/`` and ``<split>annot/``.
        split: One of ``"train"``, ``"val"``, ``"test"``.
        size: Output (height, width), or ``None`` to keep the files' size.
        max_images: Keep only the first ``max_images`` pairs (``None``: all).

    Raises:
        FileNotFoundError: If a folder is missing (see :func:`camvid_pairs`).
        ValueError: If the split is unknown or incomplete, or ``size``/``max_images`` is invalid.
            A label file with values other than 0-11 (or 255), another mode, or another size than
            its image raises ``ValueError`` when its item is loaded.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "train").mkdir(); (root / "trainannot").mkdir()
        >>> Image.new("RGB", (8, 6), (255, 0, 0)).save(root / "train" / "a.jpg")
        >>> Image.fromarray(np.full((6, 8), 11, np.uint8)).save(root / "trainannot" / "a.png")
        >>> image, label = CamVid(root, "train", size=(3, 4))[0]
        >>> tuple(image.shape), image.dtype, tuple(label.shape), label.unique().tolist()
        ((3, 3, 4), torch.float32, (3, 4), [255])
    """

    classes = CAMVID_CLASSES
    _table = lookup_table({**{i: i for i in range(CAMVID_VOID)}, CAMVID_VOID: IGNORE_INDEX})
    _rule = (
        f"CamVid labels must be class ids 0-{CAMVID_VOID - 1}, {CAMVID_VOID} (void) or "
        f"{IGNORE_INDEX}"
    )
    _find_pairs = staticmethod(camvid_pairs)

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        size: tuple[int, int] | None = None,
        max_images: int | None = None,
    ):
        super().__init__(root, split, size, max_images)


def load_camvid(
    root: str | os.PathLike,
    split: str = "train",
    size: tuple[int, int] | None = None,
    max_images: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole CamVid split into memory as stacked tensors.

    Args:
        root: Folder holding ``<split>/`` and ``<split>annot/``.
        split: One of ``"train"``, ``"val"``, ``"test"``.
        size: Output (height, width); ``None`` keeps the files' size, which must then agree.
        max_images: Load only the first ``max_images`` pairs (``None``: all).

    Returns:
        ``(images, labels)``: float32 (N, 3, H, W) in [0, 1] and int64 (N, H, W), 255 = void.

    Raises:
        FileNotFoundError: If a folder is missing.
        ValueError: As :class:`CamVid`, or if ``size`` is ``None`` and the images differ in size.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "val").mkdir(); (root / "valannot").mkdir()
        >>> for stem in ("b", "a"):
        ...     Image.new("RGB", (8, 6)).save(root / "val" / f"{stem}.png")
        ...     label = Image.fromarray(np.full((6, 8), 3, np.uint8))
        ...     label.save(root / "valannot" / f"{stem}.png")
        >>> images, labels = load_camvid(root, "val", size=(6, 8))
        >>> tuple(images.shape), tuple(labels.shape), labels.unique().tolist()
        ((2, 3, 6, 8), (2, 6, 8), [3])
    """
    dataset = CamVid(root, split, size=size, max_images=max_images)
    items = [dataset[i] for i in range(len(dataset))]
    shapes = {tuple(image.shape[1:]) for image, _ in items}
    if len(shapes) > 1:
        raise ValueError(
            f"CamVid {split} images have different sizes {sorted(shapes)}; pass size=(H, W)"
        )
    return torch.stack([image for image, _ in items]), torch.stack([label for _, label in items])
