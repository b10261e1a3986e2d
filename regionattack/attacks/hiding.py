"""Class hiding: the dynamic target of Metzen et al. (ICCV 2017) and the hiding problem of a batch.

To make a class vanish, each of its pixels is pushed to the class of the nearest pixel of another
class in the clean prediction, so the object is painted over by its surroundings while the rest of
the scene keeps its prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from regionattack._checks import check_class_map
from regionattack.regions import nearest_outside, of_classes


def hide_target(class_map: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """The dynamic target: inside ``region``, the class of the nearest pixel outside it.

    Outside the region the target is ``class_map`` itself. An image whose region covers every
    pixel has nothing to paint with: its target is ``class_map`` unchanged.

    Args:
        class_map: (N, H, W) integer classes, e.g. the clean prediction.
        region: (N, H, W) bool, the pixels to paint over (e.g.
            :func:`regionattack.regions.of_classes` of the classes to hide).

    Returns:
        (N, H, W) long target classes.

    Example:
        >>> clean = torch.tensor([[[1, 8, 8, 8, 2]]])
        >>> hide_target(clean, clean == 8).tolist()
        [[[1, 1, 1, 2, 2]]]
    """
    class_map = check_class_map(class_map, "class_map").long()
    if not isinstance(region, torch.Tensor) or region.shape != class_map.shape:
        shape = tuple(region.shape) if isinstance(region, torch.Tensor) else type(region).__name__
        raise ValueError(
            f"region must be a bool mask of the class map's shape {tuple(class_map.shape)}; "
            f"got {shape}"
        )
    nearest = nearest_outside(region.to(class_map.device, torch.bool))
    filled = class_map.flatten(1).gather(1, nearest.clamp_min(0).flatten(1)).view_as(class_map)
    return torch.where(nearest >= 0, filled, class_map)


@dataclass
class Hiding:
    """What a batch's hiding attack works on.

    Attributes:
        inside: (N, H, W) bool, the pixels to hide: the clean prediction has one of the classes
            there (and, with a region, they lie in it).
        target: (N, H, W) long, the dynamic target (:func:`hide_target` of every pixel of the
            classes, so a pixel is never painted with a hidden class).
        present: (N,) bool, the images with pixels to hide; the others pass through unchanged.
    """

    inside: torch.Tensor
    target: torch.Tensor
    present: torch.Tensor


def hiding(clean: torch.Tensor, classes: object, region: torch.Tensor) -> Hiding:
    """The :class:`Hiding` of ``classes`` in the (N, H, W) clean prediction, within ``region``.

    Example:
        >>> clean = torch.tensor([[[1, 8, 8, 2]], [[1, 1, 2, 2]]])
        >>> h = hiding(clean, [8], torch.ones(1, 1, 4, dtype=torch.bool))
        >>> h.target.tolist(), h.present.tolist()
        ([[[1, 1, 2, 2]], [[1, 1, 2, 2]]], [True, False])
    """
    mask = of_classes(clean, classes)
    inside = mask & region
    return Hiding(inside=inside, target=hide_target(clean, mask), present=inside.flatten(1).any(1))
