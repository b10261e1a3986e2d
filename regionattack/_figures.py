"""Figures for the demo and the benchmarks (matplotlib, written as PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from regionattack import regions


def plot_ablation(summary: list[dict], path: str | Path) -> None:
    """MIoU vs k for each ranking with a band for random-k; left/right for left-ranked channels."""
    fig = Figure(figsize=(11, 4))
    (overall, halves) = fig.subplots(1, 2)
    clean = next(r for r in summary if r["k"] == 0)
    for ranking, region, style in (("flip", "overall", "o-"), ("gradient", "overall", "s-")):
        rows = sorted(
            (r for r in summary if (r["ranking"], r["region"]) == (ranking, region)),
            key=lambda r: r["k"],
        )
        overall.plot(
            [0] + [r["k"] for r in rows],
            [clean["miou"]] + [r["miou"] for r in rows],
            style,
            label=f"top-k by {ranking}",
        )
    rand = sorted((r for r in summary if r["ranking"] == "random"), key=lambda r: r["k"])
    ks = np.array([0] + [r["k"] for r in rand])
    mean = np.array([clean["miou"]] + [r["miou"] for r in rand])
    std = np.array([0.0] + [r["miou_std"] for r in rand])
    overall.plot(ks, mean, "k--", label=f"random-k (mean of {rand[0]['draws'] if rand else 0})")
    overall.fill_between(ks, mean - std, mean + std, color="gray", alpha=0.3, label="random ± std")
    overall.set(xlabel="channels zeroed (k)", ylabel="mIoU", title="Overall position channels")
    overall.legend(fontsize=8)
    for ranking, color in (("flip", "tab:blue"), ("gradient", "tab:orange")):
        rows = sorted(
            (r for r in summary if (r["ranking"], r["region"]) == (ranking, "left")),
            key=lambda r: r["k"],
        )
        if not rows:
            continue
        k = [0] + [r["k"] for r in rows]
        halves.plot(
            k,
            [clean["miou_left"]] + [r["miou_left"] for r in rows],
            "-",
            color=color,
            label=f"{ranking}-left: left half",
        )
        halves.plot(
            k,
            [clean["miou_right"]] + [r["miou_right"] for r in rows],
            ":",
            color=color,
            label=f"{ranking}-left: right half",
        )
    halves.set(
        xlabel="channels zeroed (k)", ylabel="mIoU", title="Channels ranked for the left half"
    )
    if halves.lines:
        halves.legend(fontsize=8)
    else:
        halves.text(0.5, 0.5, "no left-half ranking run", ha="center", transform=halves.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _colorize(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    palette = matplotlib.colormaps["tab20"](np.linspace(0, 1, 20))[:, :3]
    array = labels.cpu().numpy()
    colors = palette[np.clip(array, 0, 19) % 20]
    colors[array == 255] = 0.0
    return colors


def plot_attacks(
    images: torch.Tensor,
    labels: torch.Tensor,
    predictions: dict[str, torch.Tensor],
    num_classes: int,
    path: str | Path,
    *,
    region: regions.RegionLike = "left",
    rows: int = 3,
) -> None:
    """Image, labels, clean prediction and each attack's prediction, with the region outlined."""
    names = ["clean"] + [name for name in predictions if name != "clean"]
    rows = min(rows, images.shape[0])
    fig = Figure(figsize=(2.2 * (len(names) + 2), 1.9 * rows))
    axes = fig.subplots(rows, len(names) + 2, squeeze=False)
    mask = regions.as_mask(region, tuple(images.shape[-2:]))[0].numpy()
    # Spread the rows over the batch: consecutive video frames (CamVid) look alike.
    picks = torch.linspace(0, images.shape[0] - 1, rows).round().long().tolist()
    for row, i in enumerate(picks):
        panels = [images[i].permute(1, 2, 0).cpu().numpy(), _colorize(labels[i], num_classes)]
        panels += [_colorize(predictions[name][i], num_classes) for name in names]
        titles = ["image", "labels"] + names
        for ax, panel, title in zip(axes[row], panels, titles, strict=True):
            ax.imshow(panel)
            ax.contour(mask, levels=[0.5], colors="white", linewidths=1.2)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
