"""PASCAL VOC 2012 on tiny folders in the released layout: list files, palette labels, errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regionattack.data import (
    VOC_CLASSES,
    VOCSegmentation,
    voc_pairs,
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


def test_voc_classes():
    assert len(VOC_CLASSES) == 21
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[1] == "aeroplane"
    assert VOC_CLASSES[15] == "person" and VOC_CLASSES[20] == "tvmonitor"


def test_voc_fixture_is_in_the_released_format(voc_root):
    with Image.open(voc_root / "VOCdevkit/VOC2012/SegmentationClass/2007_000129.png") as label:
        assert label.mode == "P"
        assert label.convert("RGB").getpixel((1, 1)) == (224, 224, 192)  # boundary colour


def test_voc_pairs_follow_the_list_file(voc_root):
    pairs = voc_pairs(voc_root, "val")
    assert [(image.name, label.name) for image, label in pairs] == [
        (f"{name}.jpg", f"{name}.png") for name, *_ in VOC_VAL
    ]
    assert pairs[0][0].parent.name == "JPEGImages"
    assert pairs[0][1].parent.name == "SegmentationClass"


def test_voc_items_keep_their_own_size(voc_root):
    data = VOCSegmentation(voc_root)  # split defaults to val
    assert len(data) == 3 and data.classes == VOC_CLASSES and data.split == "val"
    for i, (_, shape, cls, colour) in enumerate(VOC_VAL):
        image, label = data[i]
        assert image.shape == (3, *shape) and image.dtype == torch.float32
        assert label.shape == shape and label.dtype == torch.int64
        assert 0 <= image.min() and image.max() <= 1
        mean = image.mean(dim=(1, 2)) * 255
        torch.testing.assert_close(mean, torch.tensor(colour, dtype=torch.float32), atol=4, rtol=0)
        assert torch.equal(label, torch.from_numpy(_voc_label(*shape, cls).astype(np.int64)))
    assert "VOCSegmentation(" in repr(data)


def test_voc_resize_and_batching(voc_root):
    data = VOCSegmentation(voc_root, "val", size=(16, 12))
    for i, (_, _, cls, _) in enumerate(VOC_VAL):
        image, label = data[i]
        assert image.shape == (3, 16, 12) and label.shape == (16, 12)
        assert set(label.unique().tolist()) <= {0, cls, 255}, "nearest neighbour: no new ids"
    images, labels = next(iter(torch.utils.data.DataLoader(data, batch_size=3)))
    assert images.shape == (3, 3, 16, 12) and labels.shape == (3, 16, 12)


def test_voc_nearest_resize_keeps_only_valid_ids(tmp_path):
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([0, 3, 20, 255]), size=(30, 40)).astype(np.uint8)
    voc = _write_voc(tmp_path, [("a", (30, 40), 1, (0, 0, 0))])
    _save_voc_label(voc / "SegmentationClass" / "a.png", label)
    _, resized = VOCSegmentation(tmp_path, "val", size=(7, 9))[0]
    assert resized.shape == (7, 9) and set(resized.unique().tolist()) <= {0, 3, 20, 255}


def test_voc_max_images_and_other_splits(voc_root):
    data = VOCSegmentation(voc_root, "val", max_images=2)
    assert [image.stem for image, _ in data.pairs] == ["2007_000129", "2007_000033"]
    assert len(VOCSegmentation(voc_root, "train")) == 1
    lists = voc_root / "VOCdevkit/VOC2012/ImageSets/Segmentation"
    (lists / "trainval.txt").write_text("2007_000032\n\n2008_000009\n")  # a blank line is skipped
    assert [image.stem for image, _ in voc_pairs(voc_root, "trainval")] == [
        "2007_000032",
        "2008_000009",
    ]


def test_voc_missing_root_and_layout(tmp_path, voc_root):
    with pytest.raises(FileNotFoundError, match="VOC root folder not found: .*nowhere"):
        VOCSegmentation(tmp_path / "nowhere")
    with pytest.raises(
        FileNotFoundError,
        match=r"VOC folder not found: .*VOCdevkit.VOC2012 \(expected VOCdevkit.VOC2012.JPEGImages",
    ):
        VOCSegmentation(tmp_path)
    with pytest.raises(FileNotFoundError, match="pass the folder that contains VOCdevkit/"):
        VOCSegmentation(voc_root / "VOCdevkit" / "VOC2012")


def test_voc_missing_folders_and_lists(voc_root):
    with pytest.raises(FileNotFoundError, match=r"split list not found: .*trainval\.txt"):
        VOCSegmentation(voc_root, "trainval")
    voc = voc_root / "VOCdevkit" / "VOC2012"
    (voc / "SegmentationClass").rename(voc / "SegmentationClassAug")
    with pytest.raises(FileNotFoundError, match="VOC folder not found: .*SegmentationClass "):
        VOCSegmentation(voc_root, "val")


@pytest.mark.parametrize("split", ["test", "training", "2012"])
def test_voc_unknown_split(voc_root, split):
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val', 'trainval'\]"):
        VOCSegmentation(voc_root, split)


def test_voc_listed_files_missing(voc_root):
    voc = voc_root / "VOCdevkit" / "VOC2012"
    (voc / "ImageSets/Segmentation/val.txt").write_text("")
    with pytest.raises(ValueError, match="no image ids listed in"):
        VOCSegmentation(voc_root, "val")
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000129\nghost\n")
    with pytest.raises(ValueError, match=r"1 image file\(s\) listed in .* missing .*: ghost\.jpg"):
        VOCSegmentation(voc_root, "val")
    (voc / "SegmentationClass" / "2007_000129.png").unlink()
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000129\n")
    with pytest.raises(ValueError, match=r"1 label file\(s\) .*: 2007_000129\.png"):
        VOCSegmentation(voc_root, "val")


@pytest.mark.parametrize("value", [21, 100, 254])
def test_voc_bad_label_values(voc_root, value):
    label = _voc_label(10, 14, 15)
    label[5, 5] = value
    _save_voc_label(voc_root / "VOCdevkit/VOC2012/SegmentationClass/2007_000129.png", label)
    data = VOCSegmentation(voc_root, "val")
    with pytest.raises(ValueError, match=rf"holds value {value}; VOC labels must be .*0-20 or 255"):
        data[0]


def test_voc_rgb_colour_labels_are_rejected(voc_root):
    path = voc_root / "VOCdevkit/VOC2012/SegmentationClass/2007_000033.png"
    with Image.open(path) as label:
        label.convert("RGB").save(path)
    with pytest.raises(ValueError, match="single-channel PNG .* got mode RGB"):
        VOCSegmentation(voc_root, "val")[1]
