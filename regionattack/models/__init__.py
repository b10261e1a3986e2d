"""Model builders (a fixed registry, offline), checkpoint loading, a training loop, tiny segmenters.

:func:`state_digest` names a model's weights (a hash of its ``state_dict``): results record it so
that a rerun can check it measures the same model.
"""

from regionattack._checks import state_digest
from regionattack.models.checkpoints import (
    build_from_checkpoint,
    convert_paper_state_dict,
    load_weights,
    read_state_dict,
    save_checkpoint,
)
from regionattack.models.tiny import PlantedPositionSegmenter, TinySegmenter
from regionattack.models.training import train_segmenter
from regionattack.models.zoo import build_model

__all__ = [
    "PlantedPositionSegmenter",
    "TinySegmenter",
    "build_from_checkpoint",
    "build_model",
    "convert_paper_state_dict",
    "load_weights",
    "read_state_dict",
    "save_checkpoint",
    "state_digest",
    "train_segmenter",
]
