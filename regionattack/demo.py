"""``regionattack demo``: the whole story on one small model, with no data and no downloads.

Generates street scenes (or loads CamVid), trains a small DeepLabV3 on the CPU (cached), ranks the
latent channels (flip and gradient), zeroes the top-k against random-k, attacks the left half with
:class:`~regionattack.RegionAttack` and its peers, prints tables and writes figures and JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torchattacks
from torch import nn

from regionattack import regions
from regionattack.ablation import ablated_predictions
from regionattack.attacks import PositionChannelAttack, RegionAttack, RegionPGD
from regionattack.latent import predicted_classes
from regionattack.metrics import RegionConfusion, changed_fraction, region_specificity
from regionattack.models import build_model, train_segmenter
from regionattack.normalization import with_normalization
from regionattack.ranking import ChannelRanking, default_k, rank_channels

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHITECTURE = "smp:DeepLabV3:resnet18"
# Output stride 16 and a 64-channel ASPP with small rates keep a CPU step under a second at 96x128.
ARCHITECTURE_OPTIONS = {
    "encoder_output_stride": 16,
    "decoder_channels": 64,
    "decoder_atrous_rates": (2, 4, 6),
}
K_FRACTIONS = (0.01, 0.025, 0.05, 0.10, 0.20)


@dataclass
class DemoConfig:
    """Settings of a demo run (the defaults are the documented demo)."""

    data: str = "synthetic"
    root: str | None = None
    size: tuple[int, int] = (96, 128)
    train_images: int = 640
    eval_images: int = 48
    attack_images: int = 16
    steps: int = 300
    batch_size: int = 16
    random_draws: int = 5
    eps: float = 8 / 255
    attack_steps: int = 10
    seed: int = 0
    objectives: tuple[str, ...] = ("segmentation", "channels", "both")
    extra: dict = field(default_factory=dict)

    def cache_key(self) -> str:
        """Hash of everything that determines the trained weights."""
        parts = [
            self.data,
            str(Path(self.root).resolve()) if self.root else "",
            self.size,
            self.train_images,
            self.steps,
            self.batch_size,
            self.seed,
            ARCHITECTURE,
            sorted(ARCHITECTURE_OPTIONS.items()),
            "v1",
        ]
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """``$REGIONATTACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/regionattack``, else ``~/.cache/regionattack``."""
    if os.environ.get("REGIONATTACK_CACHE_DIR"):
        return Path(os.environ["REGIONATTACK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "regionattack"


def load_data(config: DemoConfig) -> dict[str, torch.Tensor | tuple[str, ...]]:
    """Train / evaluation tensors and class names for the configured data."""
    if config.data == "synthetic":
        from regionattack.data.synthetic import CLASSES, make_batch

        train = make_batch(config.train_images, config.size, seed=config.seed)
        evaluation = make_batch(config.eval_images, config.size, seed=config.seed + 10_000)
        classes = CLASSES
    elif config.data == "camvid":
        from regionattack.data.camvid import CAMVID_CLASSES, load_camvid

        if config.root is None:
            raise ValueError("--data camvid needs --root DIR (the SegNet-layout CamVid folder)")
        train = load_camvid(config.root, "train", size=config.size, max_images=config.train_images)
        evaluation = load_camvid(
            config.root, "val", size=config.size, max_images=config.eval_images
        )
        classes = CAMVID_CLASSES
    else:
        raise ValueError(f"data must be 'synthetic' or 'camvid'; got {config.data!r}")
    return {
        "train_images": train[0],
        "train_labels": train[1],
        "eval_images": evaluation[0],
        "eval_labels": evaluation[1],
        "classes": tuple(classes),
    }


def demo_model(num_classes: int) -> nn.Module:
    """The demo's DeepLabV3-ResNet18 (random weights) behind ImageNet normalisation."""
    model = build_model(ARCHITECTURE, num_classes, **ARCHITECTURE_OPTIONS)
    return with_normalization(model, IMAGENET_MEAN, IMAGENET_STD)


def trained_model(
    config: DemoConfig, data: dict, *, retrain: bool = False
) -> tuple[nn.Module, dict]:
    """Return the demo model trained on ``data``, from the cache when present."""
    num_classes = len(data["classes"])
    torch.manual_seed(config.seed)
    model = demo_model(num_classes)
    path = cache_dir() / f"demo-{config.data}-{config.cache_key()}.pt"
    info = {"checkpoint": str(path), "cached": False}
    if path.exists() and not retrain:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        model.model.load_state_dict(checkpoint["state_dict"])
        info.update(cached=True, train_seconds=checkpoint["meta"]["train_seconds"])
        return model.eval(), info
    start = time.perf_counter()
    losses = train_segmenter(
        model,
        data["train_images"],
        data["train_labels"],
        steps=config.steps,
        batch_size=config.batch_size,
        seed=config.seed,
    )
    seconds = time.perf_counter() - start
    meta = {
        "architecture": ARCHITECTURE,
        "options": {
            k: list(v) if isinstance(v, tuple) else v for k, v in ARCHITECTURE_OPTIONS.items()
        },
        "classes": list(data["classes"]),
        "size": list(config.size),
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "steps": config.steps,
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "train_seconds": seconds,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"state_dict": model.model.state_dict(), "meta": meta}, tmp)
    os.replace(tmp, path)
    info.update(train_seconds=seconds, final_loss=meta["final_loss"])
    return model.eval(), info


def _miou_by_half(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    left = regions.named("left", tuple(labels.shape[-2:]))[None]
    result = _region_result(preds, labels, left, num_classes)
    return {"miou": result.all, "miou_left": result.inside, "miou_right": result.outside}


def ablation_sweep(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    rankings: dict[str, ChannelRanking],
    num_classes: int,
    *,
    random_draws: int,
    seed: int,
) -> list[dict]:
    """MIoU (all, left, right) with the top-k channels of each ranking and random-k zeroed."""
    num_channels = next(iter(rankings.values())).num_channels
    ks = sorted({max(1, math.ceil(f * num_channels)) for f in K_FRACTIONS})
    configs: list[dict] = [{"ranking": "none", "region": "overall", "k": 0, "seed": None}]
    selections: list[torch.Tensor] = [torch.zeros(num_channels, dtype=torch.bool)]
    generator = torch.Generator().manual_seed(seed)
    for k in ks:
        for ranking in rankings.values():
            configs.append(
                {"ranking": ranking.method, "region": ranking.region, "k": k, "seed": None}
            )
            selections.append(ranking.top(k))
        for draw in range(random_draws):
            configs.append({"ranking": "random", "region": "overall", "k": k, "seed": seed + draw})
            selections.append(torch.randperm(num_channels, generator=generator)[:k])
    # k = 0 (no channel zeroed) is the clean prediction: an all-False mask ablates nothing.
    predictions = ablated_predictions(model, images, selections)
    return [
        {**config, **_miou_by_half(prediction, labels, num_classes)}
        for config, prediction in zip(configs, predictions, strict=True)
    ]


def attack_suite(
    config: DemoConfig, model: nn.Module, ranking_left: ChannelRanking
) -> dict[str, object]:
    """The attacks compared on the left half, by name."""
    common = {
        "eps": config.eps,
        "alpha": config.eps / 4,
        "steps": config.attack_steps,
        "seed": config.seed,
    }
    suite: dict[str, object] = {
        f"RegionAttack[{objective}]": RegionAttack(model, "left", objective=objective, **common)
        for objective in config.objectives
    }
    suite["RegionPGD"] = RegionPGD(model, "left", **common)
    suite["PositionChannelAttack[left-ranked]"] = PositionChannelAttack(
        model, ranking_left, **common
    )
    suite["torchattacks.PGD (whole image)"] = torchattacks.PGD(
        model, eps=config.eps, alpha=config.eps / 4, steps=config.attack_steps, random_start=True
    )
    return suite


def evaluate_attacks(
    config: DemoConfig,
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    ranking_left: ChannelRanking,
    num_classes: int,
) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Run each attack on the images; mIoU inside (left) / outside (right), specificity, cost."""
    left = regions.named("left", tuple(images.shape[-2:]))[None]
    with torch.no_grad():
        clean_preds = predicted_classes(model(images))
    clean = _region_result(clean_preds, labels, left, num_classes)
    # torchattacks.PGD's cross-entropy does not ignore 255: give it the clean prediction there.
    pgd_labels = torch.where(labels == 255, clean_preds, labels)
    rows, adversarial = [], {}
    for name, attack in attack_suite(config, model, ranking_left).items():
        torch.manual_seed(config.seed)
        start = time.perf_counter()
        adv = attack(images, pgd_labels if name.startswith("torchattacks") else labels)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            preds = predicted_classes(model(adv))
        result = _region_result(preds, labels, left, num_classes)
        rows.append(
            {
                "attack": name,
                "eps": config.eps,
                "region": "left",
                "miou": result.all,
                "miou_inside": result.inside,
                "miou_outside": result.outside,
                "drop_inside": clean.inside - result.inside,
                "drop_outside": clean.outside - result.outside,
                "specificity": region_specificity(clean, result),
                "changed_inside": changed_fraction(clean_preds, preds, left, labels),
                "changed_outside": changed_fraction(clean_preds, preds, ~left, labels),
                "linf": float((adv - images).abs().max()),
                "seconds_per_image": seconds / images.shape[0],
            }
        )
        adversarial[name] = preds
    adversarial["clean"] = clean_preds
    return rows, adversarial


def _region_result(preds, labels, mask, num_classes):
    confusion = RegionConfusion(num_classes)
    confusion.update(preds, labels, mask)
    return confusion.result()


def summarize_ablation(rows: list[dict]) -> list[dict]:
    """Mean (and std for random) mIoU per (ranking, region, k)."""
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
    """A Markdown table; ``columns`` are (key, header, format)."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = [format(row[key], fmt) if fmt else str(row[key]) for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_demo(config: DemoConfig, out_dir: str | os.PathLike, *, retrain: bool = False) -> dict:
    """Run the demo; write ``results.json`` and figures to ``out_dir``; return the results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    data = load_data(config)
    timings["data"] = time.perf_counter() - start
    num_classes = len(data["classes"])
    model, train_info = trained_model(config, data, retrain=retrain)
    timings["train"] = time.perf_counter() - start - timings["data"]

    mark = time.perf_counter()
    # Rankings are computed on the evaluation images themselves, without labels (targets are the
    # model's clean predictions): the setting of an attacker who ranks on the batch it attacks.
    # Rankings made on other images transfer poorly on CamVid (see README, Results).
    images, labels = data["eval_images"], data["eval_labels"]
    rankings = {
        "flip": rank_channels(model, images, method="flip"),
        "gradient": rank_channels(model, images),
        "flip-left": rank_channels(model, images, method="flip", region="left"),
        "gradient-left": rank_channels(model, images, region="left"),
    }
    timings["rank"] = time.perf_counter() - mark

    mark = time.perf_counter()
    ablation = ablation_sweep(
        model,
        images,
        labels,
        rankings,
        num_classes,
        random_draws=config.random_draws,
        seed=config.seed,
    )
    timings["ablation"] = time.perf_counter() - mark

    mark = time.perf_counter()
    n = config.attack_images
    attacks, predictions = evaluate_attacks(
        config, model, images[:n], labels[:n], rankings["gradient-left"], num_classes
    )
    timings["attacks"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - start

    results = {
        "config": {**asdict(config), "size": list(config.size)},
        "model": {"architecture": ARCHITECTURE, **train_info},
        "clean": ablation[0],
        "default_k": default_k(rankings["flip"].num_channels),
        "ablation": ablation,
        "ablation_summary": summarize_ablation(ablation),
        "attacks": attacks,
        "timings": timings,
    }
    _write_json(out / "results.json", results)
    from regionattack._figures import plot_ablation, plot_attacks

    plot_ablation(results["ablation_summary"], out / "ablation.png")
    plot_attacks(
        images[:n], labels[:n], predictions, num_classes, out / "attacks.png", region="left"
    )
    return results


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(tmp, path)


def report(results: dict) -> str:
    """Human-readable tables of a demo run."""
    clean = results["clean"]
    lines = [
        f"model: {results['model']['architecture']} "
        f"({'cached' if results['model']['cached'] else 'trained now'}: {results['model']['checkpoint']})",
        f"clean mIoU: all {clean['miou']:.3f}, left {clean['miou_left']:.3f}, "
        f"right {clean['miou_right']:.3f}",
        "",
        "Zeroing top-k channels (mIoU; random = mean of draws):",
    ]
    summary = [r for r in results["ablation_summary"] if r["k"] > 0]
    lines.append(
        format_table(
            summary,
            [
                ("ranking", "ranking", ""),
                ("region", "ranked for", ""),
                ("k", "k", ""),
                ("miou", "mIoU", ".3f"),
                ("miou_std", "std", ".3f"),
                ("miou_left", "mIoU left", ".3f"),
                ("miou_right", "mIoU right", ".3f"),
            ],
        )
    )
    lines += ["", "Attacks on the left half (inside = left, outside = right):"]
    lines.append(
        format_table(
            results["attacks"],
            [
                ("attack", "attack", ""),
                ("miou_inside", "mIoU inside", ".3f"),
                ("miou_outside", "mIoU outside", ".3f"),
                ("drop_inside", "drop inside", ".3f"),
                ("drop_outside", "drop outside", ".3f"),
                ("specificity", "specificity", ".1f"),
                ("seconds_per_image", "s/image", ".3f"),
            ],
        )
    )
    timings = results["timings"]
    lines += [
        "",
        "timings (s): " + ", ".join(f"{key} {value:.1f}" for key, value in timings.items()),
    ]
    return "\n".join(lines)
