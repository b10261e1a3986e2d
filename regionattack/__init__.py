"""regionattack: where can a segmentation network be broken?

Implements Islam et al., "Global Pooling, More than Meets the Eye: Position Information is Encoded
Channel-Wise in CNNs" (ICCV 2021): rank the latent channels that encode position, zero them, and
attack chosen image regions with torchattacks-compatible attacks.
"""

from regionattack import metrics, regions
from regionattack.ablation import ChannelAblation, ablate_channels
from regionattack.attacks import (
    ATTACKS,
    PGD,
    SEA,
    CosPGD,
    HideClasses,
    LocalizedPGD,
    Metzen,
    PositionChannelAttack,
    RegionAttack,
    RegionPGD,
    SegmentationAttack,
    SegPGD,
    UniformNoise,
    build_attack,
    hide_target,
    register,
)
from regionattack.latent import find_layer, latent_of
from regionattack.maps import VulnerabilityMap, vulnerability_map
from regionattack.metrics import ConfusionMatrix, region_miou
from regionattack.normalization import NormalizedModel, with_normalization
from regionattack.ranking import ChannelRanking, rank_channels

__version__ = "0.1.0"

__all__ = [
    "ATTACKS",
    "PGD",
    "ChannelAblation",
    "ChannelRanking",
    "ConfusionMatrix",
    "CosPGD",
    "HideClasses",
    "LocalizedPGD",
    "Metzen",
    "NormalizedModel",
    "PositionChannelAttack",
    "RegionAttack",
    "RegionPGD",
    "SEA",
    "SegPGD",
    "SegmentationAttack",
    "UniformNoise",
    "VulnerabilityMap",
    "ablate_channels",
    "build_attack",
    "find_layer",
    "hide_target",
    "latent_of",
    "metrics",
    "rank_channels",
    "region_miou",
    "register",
    "regions",
    "vulnerability_map",
    "with_normalization",
]
