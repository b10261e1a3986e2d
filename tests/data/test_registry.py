"""The dataset registry: names, class counts, load_dataset and its argument errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regionattack.data import (
    CAMVID_CLASSES,
    CITYSCAPES_CLASSES,
    DATASETS,
    VOC_CLASSES,
    CamVid,
    Cityscapes,
    VOCSegmentation,
    check_size_divisible,
    load_dataset,
    num_classes,
)

ROAD_ID, CAR_ID, UNLABELED_ID, BICYCLE_ID = 7, 26, 0, 33
ROAD, CAR, BICYCLE = 0, 13, 18


def _save_rgb(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array.astype(np.uint8), mode="RGB")
    if path.suffix == ".jpg":
        image.save(path, quality=95, subsampling=0)
    else:
        image.save(path)


def _save_gray(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode="L").save(path)


# --------------------------------------------------------------------------------------------
# Cityscapes


def _label_ids(height: int, width: int) -> np.ndarray:
    """Four vertical bands of labelIds: road (7), car (26), unlabeled (0), bicycle (33)."""
    label = np.empty((height, width), np.uint8)
    for band, value in enumerate((ROAD_ID, CAR_ID, UNLABELED_ID, BICYCLE_ID)):
        label[:, band * width // 4 : (band + 1) * width // 4] = value
    return label


def _add_cityscapes_item(root: Path, split: str, city: str, name: str, colour, label) -> None:
    stem = f"{city}_{name}"
    height, width = label.shape
    _save_rgb(
        root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
        np.full((height, width, 3), colour),
    )
    labels = root / "gtFine" / split / city
    _save_gray(labels / f"{stem}_gtFine_labelIds.png", label)
    # the other files of the release sit next to the labelIds and must be ignored
    _save_rgb(labels / f"{stem}_gtFine_color.png", np.zeros((height, width, 3)))
    (labels / f"{stem}_gtFine_polygons.json").write_text("{}")


# (city, name, colour) of the val split, in the order the dataset must list them
CITYSCAPES_VAL = [
    ("frankfurt", "000000_000294", (200, 0, 0)),
    ("frankfurt", "000000_000576", (0, 200, 0)),
    ("lindau", "000000_000019", (0, 0, 200)),
]


@pytest.fixture
def cityscapes_root(tmp_path):
    """Cityscapes with val (2 cities, 3 images) and train (1 image), 8x16 pixels."""
    root = tmp_path / "cityscapes"
    for city, name, colour in reversed(CITYSCAPES_VAL):
        _add_cityscapes_item(root, "val", city, name, colour, _label_ids(8, 16))
    _add_cityscapes_item(root, "train", "aachen", "000000_000019", (9, 9, 9), _label_ids(8, 16))
    return root


# --------------------------------------------------------------------------------------------
# PASCAL VOC 2012


def _voc_palette() -> list[int]:
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


VOC_PALETTE = _voc_palette()


def _save_voc_label(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    label = Image.fromarray(array.astype(np.uint8), mode="L")
    label.putpalette(VOC_PALETTE)  # indices stay the class ids, as in SegmentationClass/
    label.save(path)


def _voc_label(height: int, width: int, cls: int) -> np.ndarray:
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


def _write_voc(root: Path, items, split: str = "val") -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    for name, (height, width), cls, colour in items:
        _save_rgb(voc / "JPEGImages" / f"{name}.jpg", np.full((height, width, 3), colour))
        _save_voc_label(voc / "SegmentationClass" / f"{name}.png", _voc_label(height, width, cls))
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / f"{split}.txt").write_text("".join(f"{name}\n" for name, *_ in items))
    return voc


@pytest.fixture
def voc_root(tmp_path):
    """VOC 2012 with val (3 images of different sizes) and train (1 image)."""
    root = tmp_path / "voc"
    _write_voc(root, VOC_VAL)
    _write_voc(root, [("2007_000032", (8, 12), 7, (90, 90, 90))], split="train")
    return root


# --------------------------------------------------------------------------------------------
# Shared argument checks and the registry


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"size": (8,)}, ValueError, r"size must be None or \(height, width\)"),
        ({"size": (8, 0)}, ValueError, "width must be positive"),
        ({"size": (8.0, 8)}, TypeError, "height must be an int"),
        ({"max_images": 0}, ValueError, "max_images must be positive"),
        ({"max_images": 1.5}, TypeError, "max_images must be an int"),
    ],
)
@pytest.mark.parametrize("dataset", [Cityscapes, VOCSegmentation])
def test_argument_errors(cityscapes_root, voc_root, dataset, kwargs, error, match):
    root = cityscapes_root if dataset is Cityscapes else voc_root
    with pytest.raises(error, match=match):
        dataset(root, "val", **kwargs)


def test_registry_names_and_class_counts():
    assert DATASETS == ("camvid", "cityscapes", "voc")
    assert [num_classes(name) for name in DATASETS] == [11, 19, 21]


@pytest.fixture
def camvid_root(tmp_path):
    root = tmp_path / "camvid"
    for stem in ("b", "a"):
        _save_rgb(root / "val" / f"{stem}.png", np.zeros((8, 12, 3)))
        _save_gray(root / "valannot" / f"{stem}.png", np.full((8, 12), 3))
    return root


def test_load_dataset_all_names(camvid_root, cityscapes_root, voc_root):
    roots = {"camvid": camvid_root, "cityscapes": cityscapes_root, "voc": voc_root}
    expected = {
        "camvid": (CamVid, CAMVID_CLASSES),
        "cityscapes": (Cityscapes, CITYSCAPES_CLASSES),
        "voc": (VOCSegmentation, VOC_CLASSES),
    }
    for name in DATASETS:
        data = load_dataset(name, roots[name], "val", size=(4, 6), max_images=2)
        cls, classes = expected[name]
        assert type(data) is cls and data.classes == classes and len(data) == 2
        assert len(data.classes) == num_classes(name)
        image, label = data[1]
        assert image.shape == (3, 4, 6) and label.shape == (4, 6) and label.dtype == torch.int64
        assert ((label < num_classes(name)) | (label == 255)).all()
    full = load_dataset("voc", voc_root, "val")
    assert len(full) == 3 and full[0][1].shape == (10, 14)


def test_load_dataset_passes_split_and_errors_through(voc_root):
    assert len(load_dataset("voc", voc_root, "train")) == 1
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset("voc", voc_root, "test")
    with pytest.raises(FileNotFoundError, match="Cityscapes image folder not found"):
        load_dataset("cityscapes", voc_root, "val")


@pytest.mark.parametrize("name", ["ade20k", "CamVid", "pascal_voc", ""])
def test_unknown_dataset_name(tmp_path, name):
    listed = r"\['camvid', 'cityscapes', 'voc'\]"
    with pytest.raises(ValueError, match=rf"dataset must be one of {listed}; got '{name}'"):
        load_dataset(name, tmp_path, "val")
    with pytest.raises(ValueError, match=listed):
        num_classes(name)


def test_dataset_name_must_be_a_string(tmp_path):
    with pytest.raises(TypeError, match="dataset name must be a str; got int"):
        load_dataset(3, tmp_path, "val")


def test_check_size_divisible():
    assert check_size_divisible((96, 128), 16) == (96, 128)
    assert check_size_divisible([512, 1024], 32) == (512, 1024)
    assert check_size_divisible((7, 13), 1) == (7, 13)
    message = "size 100x130 is not divisible by the model's output stride 16; try 96x128"
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_size_divisible((100, 130), 16)
    with pytest.raises(ValueError, match="size 96x130 .* stride 8; try 96x128"):
        check_size_divisible((96, 130), 8)
    with pytest.raises(ValueError, match="size 10x40 .* stride 16; try 16x32"):
        check_size_divisible((10, 40), 16)


@pytest.mark.parametrize(
    "size, stride, error, match",
    [
        (None, 16, ValueError, r"size must be \(height, width\); got None"),
        ((96,), 16, ValueError, r"size must be \(height, width\); got \(96,\)"),
        ((0, 96), 16, ValueError, "height must be positive"),
        ((96, 96), 0, ValueError, "stride must be positive"),
        ((96, 96), 16.0, TypeError, "stride must be an int"),
    ],
)
def test_check_size_divisible_errors(size, stride, error, match):
    with pytest.raises(error, match=match):
        check_size_divisible(size, stride)
