"""torchattacks-compatible segmentation attacks: one attack per module."""

from regionattack.attacks.base import SegmentationAttack
from regionattack.attacks.cospgd import CosPGD
from regionattack.attacks.position_channel import PositionChannelAttack
from regionattack.attacks.region_attack import RegionAttack
from regionattack.attacks.region_pgd import RegionPGD
from regionattack.attacks.sea import SEA
from regionattack.attacks.segpgd import SegPGD
from regionattack.attacks.uniform_noise import UniformNoise

__all__ = [
    "CosPGD",
    "PositionChannelAttack",
    "RegionAttack",
    "RegionPGD",
    "SEA",
    "SegPGD",
    "SegmentationAttack",
    "UniformNoise",
]
