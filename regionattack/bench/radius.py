"""Radii in result keys, labels and plots: their value in 1/255 units."""

from __future__ import annotations


def in_255ths(eps: float) -> float:
    """A radius in 1/255 units, rounded to 4 decimals (for labels, keys and plots).

    Example:
        >>> in_255ths(8 / 255), in_255ths(0.03)
        (8.0, 7.65)
    """
    return round(eps * 255, 4)


def radius_label(eps: float) -> str:
    """The short label of a radius in result keys and file names: its value in 1/255 units.

    Example:
        >>> radius_label(8 / 255), radius_label(0.03)
        ('8', '7.65')
    """
    return f"{in_255ths(eps):g}"
