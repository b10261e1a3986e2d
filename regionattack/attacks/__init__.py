"""torchattacks-compatible segmentation attacks: one attack per module, all in one registry.

Every attack here is registered by name (:data:`ATTACKS`) and built the same way by
:func:`build_attack`; see :mod:`regionattack.attacks.registry` to add one.
"""

from regionattack.attacks.base import SegmentationAttack
from regionattack.attacks.cospgd import CosPGD
from regionattack.attacks.hide_classes import HideClasses
from regionattack.attacks.hiding import hide_target
from regionattack.attacks.localized_pgd import LocalizedPGD
from regionattack.attacks.metzen import Metzen
from regionattack.attacks.pgd import PGD
from regionattack.attacks.position_channel import PositionChannelAttack
from regionattack.attacks.region_attack import RegionAttack
from regionattack.attacks.region_pgd import RegionPGD
from regionattack.attacks.registry import (
    ATTACKS,
    attack_class,
    build_attack,
    parse_attack_name,
    register,
    unregister,
)
from regionattack.attacks.sea import SEA
from regionattack.attacks.segpgd import SegPGD
from regionattack.attacks.uniform_noise import UniformNoise

__all__ = [
    "ATTACKS",
    "PGD",
    "CosPGD",
    "HideClasses",
    "LocalizedPGD",
    "Metzen",
    "PositionChannelAttack",
    "RegionAttack",
    "RegionPGD",
    "SEA",
    "SegPGD",
    "SegmentationAttack",
    "UniformNoise",
    "attack_class",
    "build_attack",
    "hide_target",
    "parse_attack_name",
    "register",
    "unregister",
]
