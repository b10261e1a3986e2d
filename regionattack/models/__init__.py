"""Model builders (a fixed registry, offline) and tiny segmenters for tests and examples."""

from regionattack.models.tiny import PlantedPositionSegmenter, TinySegmenter
from regionattack.models.zoo import build_model

__all__ = ["PlantedPositionSegmenter", "TinySegmenter", "build_model"]
