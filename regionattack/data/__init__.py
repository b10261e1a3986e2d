"""Datasets: synthetic street scenes (no data, no download), CamVid, Cityscapes and PASCAL VOC 2012.

All return images as float32 (3, H, W) in [0, 1] and labels as int64 (H, W) class ids, with 255
marking pixels to ignore. :func:`load_dataset` opens the file-based ones by name.
"""

from regionattack.data.camvid import (
    CAMVID_CLASSES,
    CAMVID_VOID,
    CamVid,
    camvid_pairs,
    load_camvid,
)
from regionattack.data.cityscapes import (
    CITYSCAPES_CLASSES,
    LABEL_TO_TRAIN_ID,
    Cityscapes,
    cityscapes_pairs,
)
from regionattack.data.registry import (
    DATASETS,
    check_size_divisible,
    load_dataset,
    num_classes,
)
from regionattack.data.synthetic import CLASSES, SyntheticStreets, make_batch, make_scene
from regionattack.data.voc import VOC_CLASSES, VOCSegmentation, voc_pairs

__all__ = [
    "CAMVID_CLASSES",
    "CAMVID_VOID",
    "CITYSCAPES_CLASSES",
    "CLASSES",
    "DATASETS",
    "LABEL_TO_TRAIN_ID",
    "VOC_CLASSES",
    "CamVid",
    "Cityscapes",
    "SyntheticStreets",
    "VOCSegmentation",
    "camvid_pairs",
    "check_size_divisible",
    "cityscapes_pairs",
    "load_camvid",
    "load_dataset",
    "make_batch",
    "make_scene",
    "num_classes",
    "voc_pairs",
]
