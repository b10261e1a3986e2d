"""How strong inside and how quiet outside each region attack is, over eps, steps and seeds.

For every attack variant, radius, step count and attack seed, the left half of the first
``--images`` images of a CamVid split is attacked (labels as targets) and four numbers are kept:
the mIoU drop inside and outside the region, and the fraction of valid pixels whose predicted
class changed inside and outside. Uniform noise of the same radius is measured in the same run:
the outside changed fraction of an attack is read next to it, not as a ratio whose denominator
can be near zero. Rows are written to ``--out`` after each unit (a rerun resumes; another model,
other images or other settings are refused), and ``--figure`` draws drop inside against drop
outside and against the outside changed fraction (mean and spread over seeds, one panel per
radius, RegionAttack's ``outside_weight`` sweep joined by a line)::

    python -m benchmarks.region_strength --checkpoint checkpoints/demo-camvid-s0.pt \\
        --root ../shared/data/camvid --images 32 --eps 2/255,4/255,8/255 --steps 10 \\
        --seeds 0,1,2 --out benchmarks/results/region_strength-demo.json \\
        --figure docs/results/region_strength-demo.png
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from benchmarks import camvid_checkpoint
from benchmarks.camvid_checkpoint import mean_and_spread
from regionattack.attacks import attack_class, build_attack
from regionattack.bench import write_record
from regionattack.bench.attacking import run_attack, summarize_attack
from regionattack.bench.identity import data_identity
from regionattack.bench.radius import radius_label
from regionattack.bench.region_names import region_mask
from regionattack.bench.setting import Setting
from regionattack.models import state_digest

#: label -> (attack name of the suite, constructor options); the trade-off knob of RegionAttack
#: is ``outside_weight`` (the weight of the term that keeps the outside's prediction), swept with
#: the outside term as cross-entropy (``ow=``) and as the margin hinge (``margin ow=``,
#: ``outside_margin=0.1``), both with the step that decays linearly (``pgd-decay``).
VARIANTS: dict[str, tuple[str, dict]] = {
    "UniformNoise": ("UniformNoise", {}),
    "RegionPGD": ("RegionPGD", {}),
    "CosPGD": ("CosPGD", {}),
    "CosPGD[pgd-decay]": ("CosPGD[pgd-decay]", {}),
    "CosPGD[apgd]": ("CosPGD[apgd]", {}),
    "APGD-MCE": ("SEA[mce]", {}),
    "SEA": ("SEA", {}),
    "RegionAttack[pgd]": ("RegionAttack[pgd]", {}),
    "RegionAttack[apgd]": ("RegionAttack[apgd]", {}),
    "RegionAttack ow=0.3": ("RegionAttack[pgd-decay]", {"outside_weight": 0.3}),
    "RegionAttack ow=1": ("RegionAttack[pgd-decay]", {}),
    "RegionAttack ow=3": ("RegionAttack[pgd-decay]", {"outside_weight": 3.0}),
    "RegionAttack margin ow=0.3": ("RegionAttack", {"outside_margin": 0.1, "outside_weight": 0.3}),
    "RegionAttack margin ow=1": ("RegionAttack", {"outside_margin": 0.1}),
    "RegionAttack margin ow=3": ("RegionAttack", {"outside_margin": 0.1, "outside_weight": 3.0}),
    "RegionAttack margin ow=10": ("RegionAttack", {"outside_margin": 0.1, "outside_weight": 10.0}),
    "RegionAttack both": ("RegionAttack[both]", {}),
    "RegionAttack channels": ("RegionAttack[channels]", {}),
    "RegionAttack perturb=region": ("RegionAttack[pgd-decay]", {"perturb_region": "left"}),
    "RegionAttack max=noise": ("RegionAttack", {"max_outside": "noise"}),
    "RegionAttack max=1%": ("RegionAttack", {"max_outside": 0.01}),
    "LocalizedPGD": ("LocalizedPGD", {}),
}


#: not run unless asked for: SEA (300-step runs per loss at its defaults) and the channel
#: objectives (weak: docs/results/camvid.md)
def whole_image(variant: str) -> bool:
    """Whether the variant's attack ignores the region (the registry says; noise does)."""
    return attack_class(VARIANTS[variant][0]).whole_image


DEFAULT_VARIANTS = tuple(
    name for name in VARIANTS if name not in ("SEA", "RegionAttack both", "RegionAttack channels")
)
KEPT = (
    "drop_inside",
    "drop_outside",
    "changed_inside",
    "changed_outside",
    "specificity",
    "budget_met",
)


def unit_key(variant: str, eps: float, steps: int, seed: int) -> str:
    """The key of one measurement in the results file.

    Example:
        >>> unit_key("CosPGD", 8 / 255, 10, 0)
        'CosPGD/8/10/0'
    """
    return f"{variant}/{radius_label(eps)}/{steps}/{seed}"


def summarize(rows: dict[str, dict], variant: str, eps: float, steps: int) -> dict[str, float]:
    """Mean and (population) standard deviation over seeds of each kept number of a variant.

    Example:
        >>> rows = {"a/8/10/0": {"variant": "a", "eps": 8 / 255, "steps": 10, "drop_inside": 0.2},
        ...         "a/8/10/1": {"variant": "a", "eps": 8 / 255, "steps": 10, "drop_inside": 0.4}}
        >>> summary = summarize(rows, "a", 8 / 255, 10)
        >>> round(summary["drop_inside"], 3), round(summary["drop_inside_std"], 3), summary["seeds"]
        (0.3, 0.1, 2)
    """
    chosen = [
        row
        for row in rows.values()
        if (row["variant"], radius_label(row["eps"]), row["steps"])
        == (variant, radius_label(eps), steps)
    ]
    return mean_and_spread(chosen, KEPT)


def table(record: dict) -> str:
    """A Markdown table: one row per variant, radius and step count (mean ± std over seeds).

    The ``budget met`` column (the fraction of images that kept an outside budget) is there when
    a variant had a budget.
    """
    settings = record["settings"]
    rows = []
    for steps in settings["steps"]:
        for eps in sorted(settings["eps"]):
            noise = summarize(record["rows"], "UniformNoise", eps, steps)
            for variant in settings["variants"]:
                s = summarize(record["rows"], variant, eps, steps)
                if s["seeds"]:
                    rows.append((variant, eps, steps, s, noise))
    budgets = any("budget_met" in s for *_, s, _ in rows)
    lines = [
        "| attack | eps | steps | seeds | drop inside | drop outside | changed inside | "
        "changed outside | noise changed outside | specificity |"
        + (" budget met |" if budgets else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if budgets else ""),
    ]
    for variant, eps, steps, s, noise in rows:
        cells = [
            f"{s[name]:.3f} ± {s[name + '_std']:.3f}"
            for name in ("drop_inside", "drop_outside", "changed_inside", "changed_outside")
        ]
        reference = f"{noise['changed_outside']:.3f}" if noise["seeds"] else "-"
        met = (f" {s['budget_met']:.2f} |" if "budget_met" in s else " - |") if budgets else ""
        lines.append(
            f"| {variant} | {radius_label(eps)}/255 | {steps} | {s['seeds']} | "
            f"{' | '.join(cells)} | {reference} | {s['specificity']:.1f} |{met}"
        )
    return "\n".join(lines)


def figure(record: dict, path: Path) -> None:
    """Drop inside vs drop outside and vs outside changed fraction, one column per radius."""
    import matplotlib
    from matplotlib.figure import Figure

    settings = record["settings"]
    radii = sorted(settings["eps"])
    fig = Figure(figsize=(4.2 * len(radii), 7.6))
    axes = fig.subplots(2, len(radii), squeeze=False)
    steps_markers = dict(zip(settings["steps"], "os^", strict=False))
    colors: dict[str, object] = {}
    labelled: set[str] = set()
    palette = matplotlib.colormaps["tab20"]
    for column, eps in enumerate(radii):
        for row, x_name in enumerate(("drop_outside", "changed_outside")):
            ax = axes[row][column]
            for steps in settings["steps"]:
                sweeps: dict[str, list[tuple[float, float]]] = {}
                for variant in settings["variants"]:
                    s = summarize(record["rows"], variant, eps, steps)
                    if not s["seeds"]:
                        continue
                    if x_name == "changed_outside" and whole_image(variant):  # the noise floor
                        ax.axvline(s[x_name], color="grey", ls=":", lw=1)
                    color = colors.setdefault(variant, palette(len(colors) % 20))
                    ax.errorbar(
                        s[x_name],
                        s["drop_inside"],
                        xerr=s[f"{x_name}_std"],
                        yerr=s["drop_inside_std"],
                        fmt=steps_markers.get(steps, "o"),
                        color=color,
                        label=_once(labelled, f"{variant} ({steps} steps)"),
                        ms=5,
                        capsize=2,
                    )
                    if " ow=" in variant:  # one line per sweep of outside_weight
                        sweep = sweeps.setdefault(variant.split(" ow=")[0], [])
                        sweep.append((s[x_name], s["drop_inside"]))
                for sweep in sweeps.values():
                    ax.plot(*zip(*sweep, strict=True), "-", color="k", lw=0.8, alpha=0.5)
            ax.set(
                xlabel="mIoU drop outside"
                if row == 0
                else "outside pixels changed (dotted: noise)",
                ylabel="mIoU drop inside",
                title=f"eps {radius_label(eps)}/255",
            )
            ax.grid(alpha=0.3)
    fig.legend(loc="lower center", ncol=4, fontsize=7)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _once(seen: set[str], label: str) -> str | None:
    """``label`` the first time it is seen (one legend entry per series), else None."""
    if label in seen:
        return None
    seen.add(label)
    return label


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``benchmarks/region_strength.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    camvid_checkpoint.add_arguments(parser)
    camvid_checkpoint.add_sweep_arguments(parser)
    parser.add_argument(
        "--variants",
        type=lambda t: t.split(","),
        default=list(DEFAULT_VARIANTS),
        help=f"comma-separated subset of: {', '.join(VARIANTS)}",
    )
    parser.add_argument("--out", required=True, help="results JSON (resumed when present)")
    parser.add_argument("--figure", help="PNG of the trade-off")
    return parser


def resumed_record(
    out: Path,
    identity: dict,
    args: argparse.Namespace,
    names: tuple[str, ...] = ("variants", "eps", "steps"),
) -> dict:
    """The record of ``out`` (a fresh one if absent), its settings extended by this run's.

    ``names`` are the settings (attributes of ``args``, lists) whose values of every run so far
    are kept in ``record["settings"]``, in the order first given.

    Raises:
        ValueError: If ``out`` holds results of another model, other images or other settings.
    """
    record = json.loads(out.read_text()) if out.exists() else {"identity": identity, "rows": {}}
    if record["identity"] != identity:
        differs = [k for k in identity if record["identity"].get(k) != identity[k]]
        raise ValueError(f"{out} holds results of another setting (differs in: {differs})")
    # the variants, radii and steps of every run so far, in the order first given
    settings = record.setdefault("settings", {})
    for name in names:
        known = settings.setdefault(name, [])
        known += [v for v in getattr(args, name) if v not in known]
    return record


def measure(setting: Setting, left, variant: str, eps: float, steps: int, seed: int) -> dict:
    """The row of one unit: the variant's attack at one radius, step count and seed."""
    name, options = VARIANTS[variant]
    attack = build_attack(
        name, setting.model, eps=eps, steps=steps, region=left, seed=seed, **options
    )
    key = unit_key(variant, eps, steps, seed)
    summary = summarize_attack(run_attack(setting, attack, left, description=key, seed=seed))
    print(
        f"{key:45s} in {summary['drop_inside']:.3f} out {summary['drop_outside']:.4f} "
        f"changed out {summary['changed_outside']:.4f}",
        flush=True,
    )
    return {
        "variant": variant,
        "eps": eps,
        "steps": steps,
        "seed": seed,
        "date": time.strftime("%F"),
        **{k: summary[k] for k in (*KEPT, "seconds_per_image", "images")},
    }


def main() -> None:
    """Measure every unit not in ``--out`` yet; print the table; draw the figure."""
    parser = build_parser()
    args = parser.parse_args()
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")

    model, size, dataset, count, images = camvid_checkpoint.load(args)
    left = region_mask("left", size)
    setting = Setting(model.eval(), images, args.batch_size, len(dataset.classes), {"region": left})
    identity = {
        "model_state": state_digest(model),
        "data": data_identity(dataset, count),
        "region": "left",
        "batch_size": args.batch_size,
    }
    out = Path(args.out)
    try:
        record = resumed_record(out, identity, args)
    except ValueError as error:
        parser.error(str(error))
    for steps, eps, variant, seed in itertools.product(
        args.steps, args.eps, args.variants, args.seeds
    ):
        key = unit_key(variant, eps, steps, seed)
        if key not in record["rows"]:
            record["rows"][key] = measure(setting, left, variant, eps, steps, seed)
            write_record(out, record)
    print(table(record))
    if args.figure:
        figure(record, Path(args.figure))


if __name__ == "__main__":
    main()
