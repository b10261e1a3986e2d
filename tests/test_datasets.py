"""Cityscapes and PASCAL VOC 2012 adapters and the dataset registry, on tiny on-disk fixtures."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from regionattack.data import (
    CAMVID_CLASSES,
    CITYSCAPES_CLASSES,
    DATASETS,
    LABEL_TO_TRAIN_ID,
    VOC_CLASSES,
    CamVid,
    Cityscapes,
    VOCSegmentation,
    check_size_divisible,
    cityscapes_pairs,
    load_dataset,
    num_classes,
    voc_pairs,
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
    _add_cityscapes_item(tmp_path, "train", "ulm", "000000_000019", (0, 0, 0), label)
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
    _add_cityscapes_item(tmp_path, "val", "bonn", "000000_000019", (1, 2, 3), label)
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
    _add_cityscapes_item(
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
    _save_rgb(path, np.zeros((8, 16, 3)))
    with pytest.raises(ValueError, match="single-channel PNG .* got mode RGB"):
        Cityscapes(cityscapes_root, "val")[2]
    _save_gray(path, np.zeros((4, 16)))
    with pytest.raises(ValueError, match=r"is 16x4 \(WxH\) but its image is 16x8"):
        Cityscapes(cityscapes_root, "val")[2]


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
