"""PASCAL VOC 2012 on tiny folders in the released layout: list files, palette labels, errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from regionattack.data import (
    VOC_CLASSES,
    VOCSegmentation,
    voc_pairs,
)
from tests.data.formats import VOC_VAL, save_voc_label, voc_label, write_voc


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
        assert torch.equal(label, torch.from_numpy(voc_label(*shape, cls).astype(np.int64)))
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
    voc = write_voc(tmp_path, [("a", (30, 40), 1, (0, 0, 0))])
    save_voc_label(voc / "SegmentationClass" / "a.png", label)
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
    label = voc_label(10, 14, 15)
    label[5, 5] = value
    save_voc_label(voc_root / "VOCdevkit/VOC2012/SegmentationClass/2007_000129.png", label)
    data = VOCSegmentation(voc_root, "val")
    with pytest.raises(ValueError, match=rf"holds value {value}; VOC labels must be .*0-20 or 255"):
        data[0]


def test_voc_rgb_colour_labels_are_rejected(voc_root):
    path = voc_root / "VOCdevkit/VOC2012/SegmentationClass/2007_000033.png"
    with Image.open(path) as label:
        label.convert("RGB").save(path)
    with pytest.raises(ValueError, match="single-channel PNG .* got mode RGB"):
        VOCSegmentation(voc_root, "val")[1]
