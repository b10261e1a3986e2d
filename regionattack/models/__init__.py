"""Model builders (a fixed registry, offline), a training loop, and tiny segmenters for tests."""

from regionattack.models.tiny import PlantedPositionSegmenter, TinySegmenter
from regionattack.models.training import train_segmenter
from regionattack.models.zoo import build_model

__all__ = ["PlantedPositionSegmenter", "TinySegmenter", "build_model", "train_segmenter"]
