"""The benchmark's Markdown report and figures, written from ``results.json`` alone."""

from __future__ import annotations

from pathlib import Path

import torch

from regionattack._figures import new_figure, plot_ablation, plot_attacks
from regionattack._files import write_atomic
from regionattack.bench.region_names import region_mask

REGION_RANKINGS = (
    ("flip", "left"),
    ("gradient", "left"),
    ("flip", "right"),
    ("gradient", "right"),
    ("gradient", "cell"),
)


def summarize_ablation(rows: list[dict]) -> list[dict]:
    """Mean and std over random draws of each (ranking, region, k) of the ablation rows.

    Example:
        >>> rows = [{"ranking": "random", "region": "overall", "k": 1, "miou": m,
        ...          "miou_left": m, "miou_right": m} for m in (0.4, 0.6)]
        >>> entry = summarize_ablation(rows)[0]
        >>> entry["draws"], round(entry["miou"], 3), round(entry["miou_std"], 3)
        (2, 0.5, 0.1)
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["ranking"], row["region"], row["k"]), []).append(row)
    summary = []
    for (ranking, region, k), members in groups.items():
        entry = {"ranking": ranking, "region": region, "k": k, "draws": len(members)}
        for key in ("miou", "miou_left", "miou_right"):
            values = torch.tensor([m[key] for m in members], dtype=torch.float64)
            entry[key] = float(values.mean())
            entry[key + "_std"] = float(values.std(unbiased=False))
        summary.append(entry)
    return summary


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table; ``columns`` are (key, header, format); None is shown as ``-``.

    Example:
        >>> print(format_table([{"k": 1, "miou": 0.5}], [("k", "k", ""), ("miou", "mIoU", ".2f")]))
        | k | mIoU |
        |---|---|
        | 1 | 0.50 |
    """
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = [
            "-" if row[key] is None else format(row[key], fmt) if fmt else str(row[key])
            for key, _, fmt in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def clean_table(clean: dict) -> str:
    """The clean mIoU on the whole image and the report's regions (``results["clean"]``)."""
    return format_table(
        [clean],
        [
            ("miou", "all", ".3f"),
            ("miou_left", "left half", ".3f"),
            ("miou_right", "right half", ".3f"),
            ("miou_center", "center", ".3f"),
            ("miou_cell", "top-left quadrant", ".3f"),
        ],
    )


def overall_table(summary: list[dict]) -> str:
    """MIoU with each ranking's top-k zeroed beside k random channels (mean ± std over draws).

    Args:
        summary: :func:`summarize_ablation` of ``results["ablation"]``.
    """
    by_k: dict[int, dict] = {}
    for row in summary:
        if row["region"] != "overall" or row["k"] == 0:
            continue
        entry = by_k.setdefault(row["k"], dict.fromkeys(("flip", "gradient", "random"), None))
        entry["k"] = row["k"]
        if row["ranking"] == "random":
            entry["random"] = f"{row['miou']:.3f} ± {row['miou_std']:.3f}"
        else:
            entry[row["ranking"]] = f"{row['miou']:.3f}"
    return format_table(
        list(by_k.values()),
        [
            ("k", "k", ""),
            ("flip", "flip", ""),
            ("gradient", "gradient", ""),
            ("random", "random (mean ± std)", ""),
        ],
    )


def region_table(ablation: list[dict]) -> str:
    """MIoU inside and outside each region with its region-ranked top-k channels zeroed."""
    return format_table(
        [
            {**r, "inside": _f(r["miou_inside"]), "outside": _f(r["miou_outside"])}
            for r in ablation
            if r["region"] != "overall"
        ],
        [
            ("ranking", "ranking", ""),
            ("region", "region", ""),
            ("k", "k", ""),
            ("inside", "mIoU inside", ""),
            ("outside", "mIoU outside", ""),
        ],
    )


def attack_table(attacks: list[dict]) -> str:
    """One row per attack and radius: mIoU and its drop inside and outside, norms, time.

    "changed outside" is the fraction of the outside's labelled pixels whose predicted class changed.
    """
    return format_table(
        attacks,
        [
            ("attack", "attack", ""),
            ("eps_255", "eps (/255)", "g"),
            ("miou_inside", "mIoU inside", ".3f"),
            ("miou_outside", "mIoU outside", ".3f"),
            ("drop_inside", "drop inside", ".3f"),
            ("drop_outside", "drop outside", ".3f"),
            ("changed_outside", "changed outside", ".3f"),
            ("specificity", "specificity", ".1f"),
            ("linf", "L-inf", ".4f"),
            ("l2", "L2", ".2f"),
            ("seconds_per_image", "s/image", ".2f"),
        ],
    )


def fidelity_table(fidelity: dict) -> str:
    """Spearman correlation of each ranking's estimate with the measured effect."""
    return format_table(
        [{"pair": k, "rho": v} for k, v in fidelity["spearman"].items()],
        [("pair", "estimate ~ measured", ""), ("rho", "Spearman", ".3f")],
    )


def _f(value: object, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def plot_regions(summary: list[dict], path: Path) -> None:
    """Drop of mIoU inside vs outside the region when region-ranked channels are zeroed."""
    clean = next(r for r in summary if r["k"] == 0)
    fig = new_figure((3.2 * len(REGION_RANKINGS), 3.2))
    axes = fig.subplots(1, len(REGION_RANKINGS))
    for ax, (ranking, region) in zip(axes, REGION_RANKINGS, strict=True):
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


def plot_attack_curves(attacks: list[dict], path: Path) -> None:
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


def plot_fidelity(fidelity: dict, path: Path) -> None:
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


def _examples(out: Path, attacks: list[dict]) -> tuple | None:
    """The first images of the strongest eps and every attack's prediction on them."""
    if not attacks:
        return None
    eps = max(row["eps_255"] for row in attacks)
    predictions, images, labels = {}, None, None
    for row in attacks:
        path = out / "examples" / f"{row['attack']}-{eps:g}.pt"
        if row["eps_255"] != eps or not path.exists():
            continue
        images, labels, clean, preds = torch.load(path, weights_only=True)
        predictions["clean"] = clean
        predictions[f"{row['attack']} {eps:g}/255"] = preds
    return (images, labels, predictions) if predictions else None


def write_report(results: dict, out: Path, *, num_classes: int, region: str = "left") -> None:
    """Write ``report.md`` and the figures (PNG) into ``out``."""
    out = Path(out)
    meta = results.get("meta", {})
    env = meta.get("environment", {})
    lines = [
        f"# regionattack bench: {meta.get('args', {}).get('dataset', '?')}",
        "",
        f"Command: `{env.get('command', '')}`  ",
        f"Commit {env.get('commit')}, torch {env.get('torch')}, device {env.get('device')}, "
        f"{env.get('threads')} threads, {env.get('world_size')} process(es).  ",
        f"Images: {meta.get('images')}; latent channels: "
        f"{meta.get('model', {}).get('latent_channels')}.",
        "",
    ]
    clean = results.get("clean")
    if clean:
        lines += ["## Clean mIoU", "", clean_table(clean), ""]
    ablation = results.get("ablation")
    if ablation:
        summary = summarize_ablation(ablation)
        plot_ablation(summary, out / "ablation.png")
        plot_regions(_region_summary(ablation), out / "regions.png")
        lines += [
            "## Overall position channels: top-k zeroed vs random-k",
            "",
            f"Clean mIoU {clean['miou']:.3f}." if clean else "",
            "",
            overall_table(summary),
            "",
            _sweep_line(results.get("ablation_timings", {}), len(ablation)),
            "",
            "![ablation](ablation.png)",
            "",
            "## Region-specific channels: mIoU inside vs outside the region when zeroed",
            "",
            region_table(ablation),
            "",
            "![regions](regions.png)",
            "",
        ]
    attacks = results.get("attacks") or []
    if attacks:
        plot_attack_curves(attacks, out / "attacks.png")
        lines += [
            f"## Input attacks on the {region} region",
            "",
            attack_table(attacks),
            "",
            "![attacks](attacks.png)",
            "",
        ]
        examples = _examples(out, attacks)
        if examples is not None:
            images, labels, predictions = examples
            mask = region_mask(region, tuple(images.shape[-2:]))
            plot_attacks(
                images, labels, predictions, num_classes, out / "examples.png", region=mask
            )
            lines += ["![examples](examples.png)", ""]
    fidelity = results.get("fidelity")
    if fidelity:
        plot_fidelity(fidelity, out / "fidelity.png")
        lines += [
            f"## Ranking fidelity ({len(fidelity['channels'])} channels zeroed one at a time)",
            "",
            fidelity_table(fidelity),
            "",
            "![fidelity](fidelity.png)",
            "",
        ]
    write_atomic(out / "report.md", "\n".join(lines))


def _sweep_line(timings: dict, configurations: int) -> str:
    if "speedup" not in timings:
        return ""
    return (
        f"The sweep evaluated {configurations} configurations in {timings['seconds']:.1f} s: "
        f"{timings['cached_seconds_per_config']:.3f} s per configuration with the latent computed "
        f"once per batch vs {timings['naive_seconds_per_config']:.3f} s for a full forward pass "
        f"per configuration ({timings['speedup']:.1f}x)."
    )


def _region_summary(ablation: list[dict]) -> list[dict]:
    """Ablation rows reduced to what :func:`plot_regions` reads (region rankings and clean)."""
    return [
        row
        for row in ablation
        if row["k"] == 0 or (row["ranking"], row["region"]) in REGION_RANKINGS
    ]
