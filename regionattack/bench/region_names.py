"""The regions the bench and the defense harness attack and measure, by name."""

from __future__ import annotations

import torch

from regionattack import regions

#: The named regions of :mod:`regionattack.regions` and ``"cell"`` (the top-left quadrant).
REGION_NAMES = (*regions.NAMES, "cell")


def region_mask(name: str, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) mask of a named region; ``"cell"`` is the top-left quadrant (cell 0 of a 2 x 2 grid).

    Example:
        >>> region_mask("cell", (2, 2)).int().tolist()
        [[1, 0], [0, 0]]
    """
    if name == "cell":
        return regions.grid_cell(size, 2, 2, 0)
    if name not in regions.NAMES:
        raise ValueError(f"region must be one of {list(REGION_NAMES)}; got {name!r}")
    return regions.named(name, size)
