"""The Cityscapes and PASCAL VOC fixtures shared by the data tests."""

import pytest

from tests.data.formats import (
    CITYSCAPES_VAL,
    VOC_VAL,
    add_cityscapes_item,
    label_ids,
    write_voc,
)


@pytest.fixture
def cityscapes_root(tmp_path):
    """Cityscapes with val (2 cities, 3 images) and train (1 image), 8x16 pixels."""
    root = tmp_path / "cityscapes"
    for city, name, colour in reversed(CITYSCAPES_VAL):
        add_cityscapes_item(root, "val", city, name, colour, label_ids(8, 16))
    add_cityscapes_item(root, "train", "aachen", "000000_000019", (9, 9, 9), label_ids(8, 16))
    return root


@pytest.fixture
def voc_root(tmp_path):
    """VOC 2012 with val (3 images of different sizes) and train (1 image)."""
    root = tmp_path / "voc"
    write_voc(root, VOC_VAL)
    write_voc(root, [("2007_000032", (8, 12), 7, (90, 90, 90))], split="train")
    return root
