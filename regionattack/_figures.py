"""Figures for the demo and the benchmarks (matplotlib, written as PNG files)."""

from __future__ import annotations

from collections.abc import Sequence
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


def plot_regions(summary: list[dict], pairs: Sequence[tuple[str, str]], path: str | Path) -> None:
    """Drop of mIoU inside vs outside the region for each (ranking, region) of ``pairs`` zeroed."""
    clean = next(r for r in summary if r["k"] == 0)
    fig = new_figure((3.2 * len(pairs), 3.2))
    axes = fig.subplots(1, len(pairs))
    for ax, (ranking, region) in zip(axes, pairs, strict=True):
        rows = sorted(
            (r for r in summary if (r["ranking"], r["region"]) == (ranking, region)),
            key=lambda r: r["k"],
        )
        if not rows:
            ax.set_visible(False)
            continue
        ks = [r["k"] for r in rows]
        clean_in, clean_out = _inside_outside(clean, region)
        ax.plot(ks, [clean_in - r["miou_inside"] for r in rows], "o-", label="inside")
        ax.plot(ks, [clean_out - r["miou_outside"] for r in rows], "s:", label="outside")
        ax.axhline(0, color="gray", lw=0.5)
        ax.set(title=f"{ranking}-{region}", xlabel="k", ylabel="mIoU drop")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _inside_outside(clean: dict, region: str) -> tuple[float, float]:
    if region == "left":
        return clean["miou_left"], clean["miou_right"]
    if region == "right":
        return clean["miou_right"], clean["miou_left"]
    return clean["miou_cell"], clean["miou_not_cell"]


def plot_attack_curves(attacks: list[dict], path: str | Path) -> None:
    """MIoU inside and outside the region vs eps, one line per attack."""
    fig = new_figure((10, 3.8))
    (inside, outside) = fig.subplots(1, 2, sharey=True)
    for name in dict.fromkeys(row["attack"] for row in attacks):
        rows = sorted((r for r in attacks if r["attack"] == name), key=lambda r: r["eps_255"])
        eps = [r["eps_255"] for r in rows]
        (line,) = inside.plot(eps, [r["miou_inside"] for r in rows], "o-", label=name)
        outside.plot(eps, [r["miou_outside"] for r in rows], "o-", color=line.get_color())
    if attacks:
        for ax, key in ((inside, "clean_miou_inside"), (outside, "clean_miou_outside")):
            ax.axhline(attacks[0][key], color="k", ls="--", lw=0.8, label="clean")
    inside.set(title="inside the region", xlabel="eps (/255)", ylabel="mIoU")
    outside.set(title="outside the region", xlabel="eps (/255)")
    inside.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_fidelity(fidelity: dict, path: str | Path) -> None:
    """Measured effect of zeroing single channels vs the rankings' estimates."""
    panels = [
        ("estimated_damage", "exact_damage", "gradient estimate", "measured CE rise"),
        ("gradient_score", "exact_position", "gradient position score", "measured position"),
        ("flip_score", "exact_position", "flip score", "measured position"),
    ]
    fig = new_figure((11, 3.4))
    axes = fig.subplots(1, len(panels))
    for ax, (x, y, xlabel, ylabel) in zip(axes, panels, strict=True):
        if x not in fidelity:
            ax.set_visible(False)
            continue
        ax.scatter(fidelity[x], fidelity[y], s=12)
        ax.set(xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_defenses(
    models: dict[str, dict],
    curves: Sequence[tuple[str, str, bool, list[dict]]],
    radii: Sequence[float],
    *,
    k: int,
    region: str,
    path: str | Path | None = None,
) -> Figure:
    """Probe accuracy, shift sensitivity, top-k zeroing, region and whole-image attacks vs eps.

    ``models`` holds each model's results (:class:`~regionattack.bench.DefenseReport`'s
    ``models``); ``curves`` one ``(model, attack, whole_image, rows)`` per attack, ``rows`` its
    results at ``radii[1:]`` (``radii[0]``, 0, is the clean prediction of the attacked images).
    Returns the figure; writes it to ``path`` when given.
    """
    fig = new_figure((18, 3.6))
    probe, shift, ablation, region_axes, pgd = fig.subplots(1, 5)
    names = list(models)
    positions = torch.arange(len(names)).tolist()
    width = 0.38
    chance = next(iter(models.values()))["probe"]["chance"] if names else 0.0
    for offset, key, label in ((-1, "probe", "plain"), (1, "probe_permuted", "permuted")):
        values = [models[n][key]["accuracy"] for n in names]
        probe.bar([p + offset * width / 2 for p in positions], values, width, label=label)
    probe.axhline(chance, color="k", ls="--", lw=0.8, label="chance")
    probe.set(title="position probe (held-out)", ylabel="accuracy", ylim=(0, 1))
    shift.bar(positions, [models[n]["shift"]["ratio"] for n in names], width)
    shift.axhline(1, color="k", ls="--", lw=0.8, label="= another image")
    shift.set(title="shift sensitivity of the pooled latent", ylabel="shift / image distance")
    bars = (("flip", "top-k flip"), ("gradient", "top-k gradient"), ("random_mean", "random"))
    for index, (key, label) in enumerate(bars):
        drops = [models[n]["clean"]["miou"] - models[n]["ablation"][key] for n in names]
        errors = None
        if key == "random_mean":
            errors = [models[n]["ablation"]["random_std"] for n in names]
        offset = (index - 1) * width * 2 / 3
        ablation.bar(
            [p + offset for p in positions], drops, width * 2 / 3, yerr=errors, label=label
        )
    ablation.axhline(0, color="gray", lw=0.5)
    ablation.set(title=f"{k} channels zeroed", ylabel="mIoU drop")
    for model, name, whole_image, rows in curves:
        if whole_image:
            values = [rows[0]["clean_miou"]] + [r["miou"] for r in rows]
            pgd.plot(radii, values, "o-", label=f"{model} {name}")
            continue
        (line,) = region_axes.plot(
            radii,
            [rows[0]["clean_miou_inside"]] + [r["miou_inside"] for r in rows],
            "o-",
            label=f"{model} {name} inside",
        )
        region_axes.plot(
            radii,
            [rows[0]["clean_miou_outside"]] + [r["miou_outside"] for r in rows],
            "s:",
            color=line.get_color(),
            label=f"{model} {name} outside",
        )
    region_axes.set(title=f"region attacks ({region})", xlabel="eps (/255)", ylabel="mIoU")
    pgd.set(title="whole-image attacks", xlabel="eps (/255)", ylabel="mIoU")
    for ax in (probe, shift, ablation):
        ax.set_xticks(positions, names, rotation=20, fontsize=8)
    for ax in (probe, shift, ablation, region_axes, pgd):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


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
