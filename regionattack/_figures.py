"""Figures for the demo and the benchmarks (matplotlib, written as PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from regionattack import regions
from regionattack._checks import import_optional

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A matplotlib ``Figure`` (no pyplot, no global state); ImportError naming ``[figures]``."""
    import_optional("matplotlib", "figures")
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def plot_ablation(summary: list[dict], path: str | Path) -> None:
    """MIoU vs k for each ranking with a band for random-k; left/right for left-ranked channels."""
    fig = new_figure((11, 4))
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
    colormaps = import_optional("matplotlib", "figures").colormaps
    palette = colormaps["tab20"](np.linspace(0, 1, 20))[:, :3]
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
    fig = new_figure((2.2 * (len(names) + 2), 1.9 * rows))
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


def plot_vulnerability_map(
    cells: torch.Tensor,
    measures: dict[str, torch.Tensor],
    image: torch.Tensor | None = None,
    path: str | Path | None = None,
) -> Figure:
    """One heat map per measure, each cell painted with its value over ``image`` (3, H, W).

    Cells are painted in order, so where user masks overlap the later one shows. NaN cells (no
    valid pixel) stay transparent. Returns the figure; writes it to ``path`` when given.
    """
    fig = new_figure((3.6 * len(measures), 3.4))
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    height, width = cells.shape[-2:]
    for ax, (name, values) in zip(axes, measures.items(), strict=True):
        painted = torch.full((height, width), float("nan"))
        for cell, value in zip(cells, values.flatten(), strict=True):
            painted[cell] = float(value)
        painted = torch.where(painted.isfinite(), painted, float("nan"))  # inf: not broken
        if image is not None:
            ax.imshow(image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        low = min(0.0, float(values.nan_to_num(0.0, posinf=0.0).min()))
        shown = ax.imshow(
            painted.numpy(), cmap="magma", alpha=0.6 if image is not None else 1.0, vmin=low
        )
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        for cell, value in zip(cells, values.flatten(), strict=True):
            rows, cols = torch.nonzero(cell, as_tuple=True)
            ax.text(float(cols.float().mean()), float(rows.float().mean()), f"{float(value):.2f}",
                    ha="center", va="center", fontsize=8, color="cyan")  # fmt: skip
        ax.set_title(name.replace("_", " ").replace("miou", "mIoU"))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig
