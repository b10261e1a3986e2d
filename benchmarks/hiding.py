"""How well each attack hides chosen classes, and what it changes elsewhere, over eps, steps, seeds.

For every class set, attack variant, radius, step count and (for attacks with a random start)
seed, the first ``--images`` images of a CamVid split whose clean prediction has one of the
classes are attacked, and three numbers are kept, pooled over the images' pixels: the hidden
fraction (pixels of the classes no longer predicted as any of them), the target match (pixels that
took the dynamic target) and the fraction of the other pixels whose class changed. Uniform noise
of the same radius is measured in the same run. Rows are written to ``--out`` after each unit (a
rerun resumes; another model, other images or another batch size are refused)::

    python -m benchmarks.hiding --checkpoint checkpoints/camvid-deeplabv3-r18.pt \\
        --root ../shared/data/camvid --images 32 --hide car --hide pedestrian \\
        --hide car+pedestrian --eps 2/255,4/255,8/255 --steps 10 --seeds 0,1,2 \\
        --out benchmarks/results/hiding-bench.json
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import math
import time
from pathlib import Path

import torch

from benchmarks import camvid_checkpoint
from benchmarks.camvid_checkpoint import mean_and_spread
from benchmarks.region_strength import resumed_record
from regionattack.attacks import attack_class, build_attack
from regionattack.bench import write_record
from regionattack.bench.hiding import measure_hiding
from regionattack.bench.identity import data_identity
from regionattack.bench.radius import radius_label
from regionattack.models import state_digest

#: label -> (registered attack, constructor options)
VARIANTS: dict[str, tuple[str, dict]] = {
    "UniformNoise": ("UniformNoise", {}),
    "Metzen": ("Metzen", {}),
    "CosPGD->target": ("CosPGD", {}),
    "HideClasses": ("HideClasses", {}),
    "HideClasses max=1%": ("HideClasses", {"max_outside": 0.01}),
    "HideClasses max=noise": ("HideClasses", {"max_outside": "noise"}),
    "HideClasses max=noise margin": (
        "HideClasses",
        {"max_outside": "noise", "outside_margin": 0.1},
    ),
}
KEPT = ("hidden_fraction", "target_match", "changed_outside_fraction", "budget_met_fraction")


def class_set(text: str, names: list[str]) -> list[int]:
    """``"car+pedestrian"`` (names or ids joined by ``+``) -> class ids of ``names``.

    Example:
        >>> class_set("car+9", ["sky", "car", "x", "x", "x", "x", "x", "x", "x", "pedestrian"])
        [1, 9]
    """
    lowered = [name.lower() for name in names]
    ids = []
    for part in text.split("+"):
        if part.isdigit():
            ids.append(int(part))
        elif part.lower() in lowered:
            ids.append(lowered.index(part.lower()))
        else:
            raise ValueError(f"unknown class {part!r}; the classes are {names}")
    return ids


def unit_key(classes: str, variant: str, eps: float, steps: int, seed: int) -> str:
    """The key of one measurement.

    Example:
        >>> unit_key("car", "Metzen", 8 / 255, 10, 0)
        'car/Metzen/8/10/0'
    """
    return f"{classes}/{variant}/{radius_label(eps)}/{steps}/{seed}"


def seeded(variant: str) -> bool:
    """Whether the variant draws random numbers (a random start), so seeds give other results.

    Example:
        >>> seeded("Metzen"), seeded("HideClasses"), seeded("UniformNoise")
        (False, True, True)
    """
    name, options = VARIANTS[variant]
    start = inspect.signature(attack_class(name)).parameters.get("random_start")
    return bool(options.get("random_start", True if start is None else start.default))


def summarize(rows: dict, classes: str, variant: str, eps: float, steps: int) -> dict:
    """Mean and population standard deviation over seeds of each kept number."""
    chosen = [
        row
        for row in rows.values()
        if (row["classes"], row["variant"], radius_label(row["eps"]), row["steps"])
        == (classes, variant, radius_label(eps), steps)
    ]
    return mean_and_spread(chosen, (*KEPT, "seconds_per_image", "images"))


def table(record: dict) -> str:
    """A Markdown table per class set: one row per variant, radius and step count."""
    settings = record["settings"]
    lines = []
    for classes in settings["classes"]:
        lines += [
            f"\n**hide {classes}**\n",
            "| attack | eps | steps | seeds | images | hidden | target match | changed outside | "
            "budget met | s/image |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for steps, eps, variant in itertools.product(
            settings["steps"], sorted(settings["eps"]), settings["variants"]
        ):
            s = summarize(record["rows"], classes, variant, eps, steps)
            if not s["seeds"]:
                continue
            cells = [
                f"{s[name]:.3f} ± {s[name + '_std']:.3f}" if name in s else "-" for name in KEPT
            ]
            seconds = f"{s['seconds_per_image']:.2f}" if "seconds_per_image" in s else "-"
            lines.append(
                f"| {variant} | {radius_label(eps)}/255 | {steps} | {s['seeds']} | "
                f"{s['images']:.0f} | {' | '.join(cells)} | {seconds} |"
            )
    return "\n".join(lines)


def figure(model, loader, classes: list[int], variant: str, eps: float, steps: int,
           path: Path, frames: int = 4) -> None:  # fmt: skip
    """The first ``frames`` images with the classes: image, clean and attacked prediction.

    The classes' clean pixels are outlined (white) in every panel.
    """
    from matplotlib.figure import Figure

    from regionattack.attacks.hiding import hiding
    from regionattack.bench.hiding import hide_with
    from regionattack.latent import predict

    batch = next(iter(loader))
    images = batch[0] if isinstance(batch, (tuple, list)) else batch
    clean = predict(model, images)
    whole = torch.ones(1, *clean.shape[-2:], dtype=torch.bool)
    present = hiding(clean, classes, whole).present
    images, clean = images[present][:frames], clean[present][:frames]
    hidden = hiding(clean, classes, whole)
    name, options = VARIANTS[variant]
    takes = attack_class(name).classes_argument
    attack = build_attack(name, model, eps=eps, steps=steps, region=None, seed=0,
                          **{**options, **({takes: classes} if takes else {})})  # fmt: skip
    attacked = predict(model, hide_with(attack, images, clean, hidden))
    fig = Figure(figsize=(9, 2.2 * len(images)))
    axes = fig.subplots(len(images), 3, squeeze=False)
    for row, (image, before, after, mask) in enumerate(
        zip(images, clean, attacked, hidden.inside, strict=True)
    ):
        panels = (image.permute(1, 2, 0), before, after)
        titles = ("image", "clean prediction", f"{variant}, {radius_label(eps)}/255, {steps} steps")
        for ax, panel, title in zip(axes[row], panels, titles, strict=True):
            if panel.ndim == 2:
                ax.imshow(panel.numpy(), cmap="tab20", vmin=0, vmax=19, interpolation="nearest")
            else:
                ax.imshow(panel.clamp(0, 1).numpy())
            ax.contour(mask.float().numpy(), levels=[0.5], colors="white", linewidths=1.0)
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``benchmarks/hiding.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    camvid_checkpoint.add_arguments(parser)
    camvid_checkpoint.add_sweep_arguments(parser)
    parser.add_argument(
        "--hide", action="append", required=True, help="class set, e.g. car or car+pedestrian"
    )
    parser.add_argument(
        "--variants",
        type=lambda t: t.split(","),
        default=list(VARIANTS),
        help=f"comma-separated subset of: {', '.join(VARIANTS)}",
    )
    parser.add_argument("--out", required=True, help="results JSON (resumed when present)")
    parser.add_argument(
        "--figure",
        help="PNG of frames before/after for the first class set, the largest radius, the first "
        "step count and the last variant",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Measure every unit not in ``--out`` yet; print the tables."""
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    model, _, dataset, count, images = camvid_checkpoint.load(args)
    try:
        sets = {text: class_set(text, list(dataset.classes)) for text in args.hide}
    except ValueError as error:
        parser.error(str(error))
    identity = {
        "model_state": state_digest(model),
        "data": data_identity(dataset, count),
        "batch_size": args.batch_size,
    }
    out = Path(args.out)
    args.classes = args.hide  # the record's settings keep the class sets too
    try:
        record = resumed_record(out, identity, args, ("variants", "eps", "steps", "classes"))
    except ValueError as error:
        parser.error(str(error))
    loader = torch.utils.data.DataLoader(images, batch_size=args.batch_size)
    for classes, steps, eps, variant in itertools.product(
        args.hide, args.steps, args.eps, args.variants
    ):
        for seed in args.seeds if seeded(variant) else args.seeds[:1]:
            key = unit_key(classes, variant, eps, steps, seed)
            if key in record["rows"]:
                continue
            name, options = VARIANTS[variant]
            takes = attack_class(name).classes_argument
            options = {**options, **({takes: sets[classes]} if takes else {})}
            attack = build_attack(
                name, model, eps=eps, steps=steps, region=None, seed=seed, **options
            )
            summary = measure_hiding(model, loader, sets[classes], attack).summary()
            record["rows"][key] = {
                "classes": classes, "variant": variant, "eps": eps, "steps": steps,
                "seed": seed, "date": time.strftime("%F"),
                **{
                    k: None if isinstance(summary[k], float) and math.isnan(summary[k])
                    else summary[k]
                    for k in (*KEPT, "seconds_per_image", "images", "pixels")
                },
            }  # fmt: skip
            write_record(out, record)
            print(
                f"{key:45s} hidden {summary['hidden_fraction']:.3f} "
                f"changed out {summary['changed_outside_fraction']:.4f}",
                flush=True,
            )
    print(table(record))
    if args.figure:
        figure(model, loader, sets[args.hide[0]], args.variants[-1], max(args.eps), args.steps[0],
               Path(args.figure))  # fmt: skip


if __name__ == "__main__":
    main()
