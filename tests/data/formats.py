"""Writers of the datasets' on-disk formats, for tiny copies made by the tests (nothing downloaded)."""

from pathlib import Path

import numpy as np
from PIL import Image

#: Cityscapes labelIds of the fixture's bands and the train ids they map to.
ROAD_ID, CAR_ID, UNLABELED_ID, BICYCLE_ID = 7, 26, 0, 33
ROAD, CAR, BICYCLE = 0, 13, 18


def save_rgb(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array.astype(np.uint8), mode="RGB")
    if path.suffix == ".jpg":
        image.save(path, quality=95, subsampling=0)
    else:
        image.save(path)


def save_gray(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode="L").save(path)


# Cityscapes


def label_ids(height: int, width: int) -> np.ndarray:
    """Four vertical bands of labelIds: road (7), car (26), unlabeled (0), bicycle (33)."""
    label = np.empty((height, width), np.uint8)
    for band, value in enumerate((ROAD_ID, CAR_ID, UNLABELED_ID, BICYCLE_ID)):
        label[:, band * width // 4 : (band + 1) * width // 4] = value
    return label


def add_cityscapes_item(root: Path, split: str, city: str, name: str, colour, label) -> None:
    stem = f"{city}_{name}"
    height, width = label.shape
    save_rgb(
        root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
        np.full((height, width, 3), colour),
    )
    labels = root / "gtFine" / split / city
    save_gray(labels / f"{stem}_gtFine_labelIds.png", label)
    # the other files of the release sit next to the labelIds and must be ignored
    save_rgb(labels / f"{stem}_gtFine_color.png", np.zeros((height, width, 3)))
    (labels / f"{stem}_gtFine_polygons.json").write_text("{}")


# (city, name, colour) of the val split, in the order the dataset must list them
CITYSCAPES_VAL = [
    ("frankfurt", "000000_000294", (200, 0, 0)),
    ("frankfurt", "000000_000576", (0, 200, 0)),
    ("lindau", "000000_000019", (0, 0, 200)),
]


# PASCAL VOC 2012


def voc_palette() -> list[int]:
    """The VOC colour map: index -> (r, g, b) from the bits of the index; 255 is (224, 224, 192)."""
    palette = []
    for index in range(256):
        rgb, value = [0, 0, 0], index
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
        palette += rgb
    return palette


VOC_PALETTE = voc_palette()


def save_voc_label(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    label = Image.fromarray(array.astype(np.uint8), mode="L")
    label.putpalette(VOC_PALETTE)  # indices stay the class ids, as in SegmentationClass/
    label.save(path)


def voc_label(height: int, width: int, cls: int) -> np.ndarray:
    """Background with one object of class ``cls`` outlined by a 1-pixel 255 boundary."""
    label = np.zeros((height, width), np.uint8)
    label[1 : height - 1, 1 : width - 1] = 255
    label[2 : height - 2, 2 : width - 2] = cls
    return label


# (id, (height, width), class, colour) in the order of val.txt (not sorted on purpose)
VOC_VAL = [
    ("2007_000129", (10, 14), 15, (240, 20, 20)),
    ("2007_000033", (12, 8), 1, (20, 240, 20)),
    ("2008_000009", (9, 9), 20, (20, 20, 240)),
]


def write_voc(root: Path, items, split: str = "val") -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    for name, (height, width), cls, colour in items:
        save_rgb(voc / "JPEGImages" / f"{name}.jpg", np.full((height, width, 3), colour))
        save_voc_label(voc / "SegmentationClass" / f"{name}.png", voc_label(height, width, cls))
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / f"{split}.txt").write_text("".join(f"{name}\n" for name, *_ in items))
    return voc
