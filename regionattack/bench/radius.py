"""Radii in result keys, labels and plots: their value in 1/255 units."""

from __future__ import annotations

from collections.abc import Sequence

from regionattack._checks import check_radius


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
    return f"{in_255ths(eps):.10g}"


def check_radii(radii: Sequence[float], name: str = "eps") -> list[float]:
    """Checked radii (each in [0, 1]), refused when two of them share a label (one result key).

    Example:
        >>> check_radii([8 / 255, 0.0313725])
        Traceback (most recent call last):
        ...
        ValueError: eps holds 0.031372549 and 0.0313725 (both 8/255 to 4 decimals, one result key); give each radius once
    """
    checked = [check_radius(radius, name) for radius in radii]
    if not checked:
        raise ValueError(f"give at least one {name}")
    seen: dict[str, float] = {}
    for radius in checked:
        label = radius_label(radius)
        if label in seen:
            raise ValueError(
                f"{name} holds {seen[label]:.8g} and {radius:.8g} (both {label}/255 to 4 decimals, "
                "one result key); give each radius once"
            )
        seen[label] = radius
    return checked
