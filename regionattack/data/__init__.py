"""Datasets: synthetic street scenes (no data, no download) and CamVid in the SegNet layout.

Both return images as float32 (3, H, W) in [0, 1] and labels as int64 (H, W) class ids, with 255
marking pixels to ignore.
"""

from regionattack.data.camvid import (
    CAMVID_CLASSES,
    CAMVID_VOID,
    CamVid,
    camvid_pairs,
    load_camvid,
)
from regionattack.data.synthetic import CLASSES, SyntheticStreets, make_batch, make_scene

__all__ = [
    "CAMVID_CLASSES",
    "CAMVID_VOID",
    "CLASSES",
    "CamVid",
    "SyntheticStreets",
    "camvid_pairs",
    "load_camvid",
    "make_batch",
    "make_scene",
]
