"""Cityscapes on tiny folders in the released layout: label ids to train ids, splits, errors."""

import numpy as np
import pytest
import torch
import torchvision

from regionattack.data import (
    CITYSCAPES_CLASSES,
    LABEL_TO_TRAIN_ID,
    Cityscapes,
    cityscapes_pairs,
)
from tests.data.formats import (
    BICYCLE,
    BICYCLE_ID,
    CAR,
    CAR_ID,
    CITYSCAPES_VAL,
    ROAD,
    ROAD_ID,
    UNLABELED_ID,
    add_cityscapes_item,
    save_gray,
    save_rgb,
)

# labelId -> trainId, as listed in cityscapesScripts' helpers/labels.py
OFFICIAL_TRAIN_IDS = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}


def test_cityscapes_classes():
    assert len(CITYSCAPES_CLASSES) == 19
    assert CITYSCAPES_CLASSES[:3] == ("road", "sidewalk", "building")
    assert CITYSCAPES_CLASSES[6:8] == ("traffic_light", "traffic_sign")
    assert CITYSCAPES_CLASSES[11] == "person" and CITYSCAPES_CLASSES[13] == "car"
    assert CITYSCAPES_CLASSES[-1] == "bicycle"


def test_label_to_train_id_is_the_official_table():
    assert LABEL_TO_TRAIN_ID.shape == (256,)
    expected = [OFFICIAL_TRAIN_IDS.get(label_id, 255) for label_id in range(256)]
    assert LABEL_TO_TRAIN_ID.tolist() == expected
    assert LABEL_TO_TRAIN_ID[26] == 13 and LABEL_TO_TRAIN_ID[0] == 255
    assert LABEL_TO_TRAIN_ID[255] == 255, "-1 (license plate) stored as uint8"
    # the same table as torchvision's copy of cityscapesScripts
    for cls in torchvision.datasets.Cityscapes.classes:
        if cls.id >= 0:
            assert LABEL_TO_TRAIN_ID[cls.id] == (cls.train_id if cls.train_id >= 0 else 255)
    # the trainIds name the classes in order
    names = {c.train_id: c.name.replace(" ", "_") for c in torchvision.datasets.Cityscapes.classes}
    assert tuple(names[i] for i in range(19)) == CITYSCAPES_CLASSES


def test_label_to_train_id_is_read_only():
    with pytest.raises(ValueError, match="read-only"):
        LABEL_TO_TRAIN_ID[0] = 0


def test_cityscapes_pairs_order_and_names(cityscapes_root):
    pairs = cityscapes_pairs(cityscapes_root, "val")
    assert [(image.parent.name, image.name) for image, _ in pairs] == [
        (city, f"{city}_{name}_leftImg8bit.png") for city, name, _ in CITYSCAPES_VAL
    ]
    for image, label in pairs:
        assert label.name == image.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
        assert label.parent == cityscapes_root / "gtFine" / "val" / image.parent.name


def test_cityscapes_items_map_label_ids_to_train_ids(cityscapes_root):
    data = Cityscapes(cityscapes_root)  # split defaults to val
    assert len(data) == 3 and data.classes == CITYSCAPES_CLASSES and data.split == "val"
    for i, (_, _, colour) in enumerate(CITYSCAPES_VAL):
        image, label = data[i]
        assert image.shape == (3, 8, 16) and image.dtype == torch.float32
        assert label.shape == (8, 16) and label.dtype == torch.int64
        assert torch.equal(image[:, 0, 0], torch.tensor(colour) / 255)
        assert (label[:, :4] == ROAD).all() and (label[:, 4:8] == CAR).all()
        assert (label[:, 8:12] == 255).all() and (label[:, 12:] == BICYCLE).all()
    assert "Cityscapes(" in repr(data) and "images=3" in repr(data)


def test_cityscapes_every_label_id(tmp_path):
    label = np.arange(256, dtype=np.uint8).reshape(16, 16)
    add_cityscapes_item(tmp_path, "train", "ulm", "000000_000019", (0, 0, 0), label)
    _, train_ids = Cityscapes(tmp_path, "train")[0]
    assert train_ids.flatten().tolist() == LABEL_TO_TRAIN_ID.tolist()


@pytest.mark.parametrize("size", [(4, 8), (5, 7), (16, 32)])
def test_cityscapes_resize(cityscapes_root, size):
    image, label = Cityscapes(cityscapes_root, "val", size=size)[2]
    assert image.shape == (3, *size) and label.shape == size
    assert set(label.unique().tolist()) <= {ROAD, CAR, BICYCLE, 255}
    torch.testing.assert_close(image.mean(dim=(1, 2)), torch.tensor([0, 0, 200 / 255]))


def test_cityscapes_nearest_resize_keeps_only_valid_ids(tmp_path):
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([ROAD_ID, CAR_ID, UNLABELED_ID, BICYCLE_ID, 24]), size=(24, 40))
    add_cityscapes_item(tmp_path, "val", "bonn", "000000_000019", (1, 2, 3), label)
    _, resized = Cityscapes(tmp_path, "val", size=(7, 11))[0]
    assert set(resized.unique().tolist()) <= {ROAD, CAR, BICYCLE, 11, 255}


def test_cityscapes_max_images_keeps_the_first(cityscapes_root):
    data = Cityscapes(cityscapes_root, "val", max_images=2)
    assert len(data) == 2
    assert [image.parent.name for image, _ in data.pairs] == ["frankfurt", "frankfurt"]
    assert torch.equal(data[1][0], Cityscapes(cityscapes_root, "val")[1][0])
    assert len(Cityscapes(cityscapes_root, "val", max_images=10)) == 3


def test_cityscapes_train_and_test_splits(cityscapes_root):
    assert len(Cityscapes(cityscapes_root, "train")) == 1
    # the public test split ships labelIds of zeros: everything is ignored
    add_cityscapes_item(
        cityscapes_root, "test", "berlin", "000000_000019", (0, 0, 0), np.zeros((8, 16))
    )
    _, label = Cityscapes(cityscapes_root, "test")[0]
    assert (label == 255).all()


def test_cityscapes_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="Cityscapes root folder not found: .*nowhere"):
        Cityscapes(tmp_path / "nowhere")


def test_cityscapes_missing_folders(cityscapes_root):
    with pytest.raises(
        FileNotFoundError,
        match=r"image folder not found: .*leftImg8bit.test .*expected "
        r"leftImg8bit/test/<city>/\*_leftImg8bit\.png and gtFine/test/<city>/\*_gtFine_labelIds",
    ):
        Cityscapes(cityscapes_root, "test")
    (cityscapes_root / "leftImg8bit" / "test").mkdir()
    with pytest.raises(FileNotFoundError, match=r"label folder not found: .*gtFine.test "):
        Cityscapes(cityscapes_root, "test")


def test_cityscapes_never_extracts_archives(tmp_path):
    (tmp_path / "leftImg8bit_trainvaltest.zip").write_bytes(b"")
    (tmp_path / "gtFine_trainvaltest.zip").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        Cityscapes(tmp_path, "val")


@pytest.mark.parametrize("split", ["training", "train_extra", "trainval"])
def test_cityscapes_unknown_split(cityscapes_root, split):
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val', 'test'\]"):
        Cityscapes(cityscapes_root, split)


def test_cityscapes_image_without_label(cityscapes_root):
    (cityscapes_root / "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(
        ValueError, match=r"1 image\(s\) .* have no label .*: lindau/lindau_000000_000019_left"
    ):
        Cityscapes(cityscapes_root, "val")


def test_cityscapes_empty_split_and_stray_files(cityscapes_root):
    for top in ("leftImg8bit", "gtFine"):
        (cityscapes_root / top / "test" / "berlin").mkdir(parents=True)
    (cityscapes_root / "leftImg8bit/test/berlin/notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"no images <city>/\*_leftImg8bit\.png found in"):
        Cityscapes(cityscapes_root, "test")
    (cityscapes_root / "leftImg8bit/test/README").write_text("not a city")
    with pytest.raises(ValueError, match="must hold only city folders; found file.* README"):
        Cityscapes(cityscapes_root, "test")


def test_cityscapes_bad_label_files(cityscapes_root):
    path = cityscapes_root / "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png"
    save_rgb(path, np.zeros((8, 16, 3)))
    with pytest.raises(ValueError, match="single-channel PNG .* got mode RGB"):
        Cityscapes(cityscapes_root, "val")[2]
    save_gray(path, np.zeros((4, 16)))
    with pytest.raises(ValueError, match=r"is 16x4 \(WxH\) but its image is 16x8"):
        Cityscapes(cityscapes_root, "val")[2]
