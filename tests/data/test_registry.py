"""The dataset registry: names, class counts, load_dataset and its argument errors."""

import numpy as np
import pytest
import torch

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
from tests.data.formats import save_gray, save_rgb


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
        save_rgb(root / "val" / f"{stem}.png", np.zeros((8, 12, 3)))
        save_gray(root / "valannot" / f"{stem}.png", np.full((8, 12), 3))
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
