"""The benchmark's Markdown report and figures, written from ``results.json`` alone."""

from __future__ import annotations

from pathlib import Path

import torch

from regionattack._figures import (
    plot_ablation,
    plot_attack_curves,
    plot_attacks,
    plot_fidelity,
    plot_regions,
)
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
            {
                **r,
                "inside": format_value(r["miou_inside"]),
                "outside": format_value(r["miou_outside"]),
            }
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


def format_value(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals for a table cell; ``-`` for a missing one (None).

    Example:
        >>> format_value(0.12345), format_value(None), format_value(2.5, 1)
        ('0.123', '-', '2.5')
    """
    return "-" if value is None else f"{value:.{digits}f}"


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
    clean = results.get("clean")
    lines = _header(results.get("meta", {}))
    if clean:
        lines += ["## Clean mIoU", "", clean_table(clean), ""]
    if results.get("ablation"):
        lines += _ablation_section(results, out)
    if results.get("attacks"):
        lines += _attack_section(results["attacks"], out, num_classes, region)
    if results.get("fidelity"):
        lines += _fidelity_section(results["fidelity"], out)
    write_atomic(out / "report.md", "\n".join(lines))


def _header(meta: dict) -> list[str]:
    env = meta.get("environment", {})
    return [
        f"# regionattack bench: {meta.get('args', {}).get('dataset', '?')}",
        "",
        f"Command: `{env.get('command', '')}`  ",
        f"Commit {env.get('commit')}, torch {env.get('torch')}, device {env.get('device')}, "
        f"{env.get('threads')} threads, {env.get('world_size')} process(es).  ",
        f"Images: {meta.get('images')}; latent channels: "
        f"{meta.get('model', {}).get('latent_channels')}.",
        "",
    ]


def _ablation_section(results: dict, out: Path) -> list[str]:
    ablation, clean = results["ablation"], results.get("clean")
    summary = summarize_ablation(ablation)
    plot_ablation(summary, out / "ablation.png")
    plot_regions(_region_summary(ablation), REGION_RANKINGS, out / "regions.png")
    return [
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


def _attack_section(attacks: list[dict], out: Path, num_classes: int, region: str) -> list[str]:
    plot_attack_curves(attacks, out / "attacks.png")
    lines = [
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
        plot_attacks(images, labels, predictions, num_classes, out / "examples.png", region=mask)
        lines += ["![examples](examples.png)", ""]
    return lines


def _fidelity_section(fidelity: dict, out: Path) -> list[str]:
    plot_fidelity(fidelity, out / "fidelity.png")
    return [
        f"## Ranking fidelity ({len(fidelity['channels'])} channels zeroed one at a time)",
        "",
        fidelity_table(fidelity),
        "",
        "![fidelity](fidelity.png)",
        "",
    ]


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
