"""``regionattack bench``: every experiment of the benchmark on one dataset, resumable.

Experiments (each a unit of :class:`~regionattack.bench.store.ResultStore`, skipped when already
in ``OUTDIR/results.json``): clean mIoU; rankings (flip and gradient; overall, left, right, and a
grid cell for gradient); the ablation sweep (top-k vs random-k, encoder run once per batch); input
attacks at each eps; ranking fidelity. Rankings are label-free and made on the evaluated images
(the model's predictions are the targets): the setting of an attacker who ranks on the batch it
attacks. Then ``report.md`` and figures are written from the results.
"""

from __future__ import annotations

import hashlib
import logging
import math
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from regionattack.bench.distributed import Workers, start_workers, stop_workers
from regionattack.bench.experiments import (
    ATTACKS,
    MaskedConfusions,
    Selection,
    Setting,
    ablation_sweep,
    build_attack,
    evaluate_clean,
    rank,
    ranking_fidelity,
    region_mask,
    run_attack,
    summarize_attack,
)
from regionattack.bench.store import ResultStore
from regionattack.demo import IMAGENET_MEAN, IMAGENET_STD, K_FRACTIONS
from regionattack.ranking import ChannelRanking

logger = logging.getLogger(__name__)

# name -> (method, region); "cell" is the top-left quadrant (cell 0 of a 2 x 2 grid).
RANKINGS = {
    "flip": ("flip", None),
    "gradient": ("gradient", None),
    "flip-left": ("flip", "left"),
    "gradient-left": ("gradient", "left"),
    "flip-right": ("flip", "right"),
    "gradient-right": ("gradient", "right"),
    "gradient-cell": ("gradient", "cell"),
}


@dataclass
class BenchConfig:
    """Settings of a benchmark run (the command line's flags)."""

    dataset: str
    root: str
    out: str
    split: str = "val"
    model: str | None = None
    num_classes: int | None = None
    checkpoint: str | None = None
    size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    stride: int = 16
    max_images: int | None = None
    attack_images: int | None = None
    batch_size: int = 8
    eps: tuple[int, ...] = (2, 4, 8)
    attack_steps: int = 10
    attacks: tuple[str, ...] = ATTACKS
    attack_region: str = "left"
    random_draws: int = 5
    fidelity_channels: int = 32
    seed: int = 0
    device: str | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def fingerprint(self) -> dict:
        """Everything that determines the numbers (not where they go or how they are shown)."""
        record = asdict(self)
        for key in ("out", "device", "progress"):
            record.pop(key)
        if self.checkpoint:
            stat = Path(self.checkpoint).stat()
            record["checkpoint_file"] = {"bytes": stat.st_size, "mtime": int(stat.st_mtime)}
        return record


def load_model(config: BenchConfig) -> tuple[torch.nn.Module, dict]:
    """The model to benchmark, behind its input normalisation, and the checkpoint's metadata."""
    from regionattack.models import build_from_checkpoint, build_model, load_weights
    from regionattack.normalization import unwrap, with_normalization

    meta: dict = {}
    if config.checkpoint and config.model is None:
        model, meta = build_from_checkpoint(config.checkpoint)
        if config.mean or config.std:  # the command line overrides the checkpoint's normalisation
            mean = config.mean or meta.get("mean") or IMAGENET_MEAN
            std = config.std or meta.get("std") or IMAGENET_STD
            model = with_normalization(unwrap(model), mean, std)
        return model, meta
    if config.model is None or config.num_classes is None:
        raise ValueError(
            "give --model and --num-classes (or a --checkpoint written by benchmarks/train.py)"
        )
    network = build_model(config.model, config.num_classes, **config.extra.get("options", {}))
    if config.checkpoint:
        meta = load_weights(network, config.checkpoint)
    mean = config.mean or meta.get("mean") or IMAGENET_MEAN
    std = config.std or meta.get("std") or IMAGENET_STD
    return with_normalization(network, mean, std), meta


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _environment(workers: Workers) -> dict:
    import segmentation_models_pytorch
    import torchattacks
    import torchvision

    device = str(workers.device)
    if workers.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(workers.device)})"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torchattacks": torchattacks.__version__,
        "segmentation_models_pytorch": segmentation_models_pytorch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": device,
        "world_size": workers.world_size,
        "commit": _git_commit(),
        "command": " ".join(sys.argv),
    }


def assemble(units: dict) -> dict:
    """Top-level fields of ``results.json`` (docs/benchmarks.md, schema) from the finished units."""
    record: dict = {}
    if "clean" in units:
        record["clean"] = units["clean"]
    if "ablation" in units:
        record["ablation"] = units["ablation"]["rows"]
        record["ablation_timings"] = units["ablation"]["timings"]
    record["attacks"] = [value for key, value in units.items() if key.startswith("attack/")]
    if "fidelity" in units:
        record["fidelity"] = units["fidelity"]
    return record


def _selections(
    rankings: dict[str, ChannelRanking], num_channels: int, draws: int, seed: int
) -> list[Selection]:
    ks = sorted({max(1, math.ceil(f * num_channels)) for f in K_FRACTIONS})
    selections = [
        Selection("none", "overall", 0, None, torch.zeros(num_channels, dtype=torch.bool))
    ]
    generator = torch.Generator().manual_seed(seed)
    for k in ks:
        for name, ranking in rankings.items():
            if name not in RANKINGS:
                continue  # ranked only for PositionChannelAttack
            region = RANKINGS[name][1] or "overall"
            selections.append(Selection(ranking.method, region, k, None, ranking.top(k)))
        for draw in range(draws):
            channels = torch.randperm(num_channels, generator=generator)[:k]
            selections.append(Selection("random", "overall", k, seed + draw, channels))
    return selections


def _part_mious(mious: dict[str, float]) -> dict[str, float]:
    """The measured parts of the image under their results.json names."""
    return {
        "miou": mious["all"],
        "miou_left": mious["left"],
        "miou_right": mious["not-left"],
        "miou_center": mious["center"],
        "miou_cell": mious["cell"],
        "miou_not_cell": mious["not-cell"],
    }


def _ablation_row(selection: Selection, confusions: MaskedConfusions, num_channels: int) -> dict:
    mious = confusions.mious()
    inside_outside = {
        "left": ("left", "not-left"),
        "right": ("not-left", "left"),
        "cell": ("cell", "not-cell"),
    }.get(selection.region)
    return {
        "ranking": selection.ranking,
        "region": selection.region,
        "k": selection.k,
        "k_fraction": selection.k / num_channels,
        "seed": selection.seed,
        **_part_mious(mious),
        "miou_inside": mious[inside_outside[0]] if inside_outside else None,
        "miou_outside": mious[inside_outside[1]] if inside_outside else None,
    }


def _attack_row(name: str, eps: int, config: BenchConfig, outcome) -> dict:
    return {
        "attack": name,
        "eps": eps / 255,
        "eps_255": eps,
        "region": "image" if name == "PGD" else config.attack_region,
        "measured_region": config.attack_region,
        "steps": config.attack_steps,
        **summarize_attack(outcome),
    }


def run_benchmark(config: BenchConfig) -> dict:
    """Run (or resume) the benchmark; write results.json, report.md and figures to ``config.out``.

    Returns:
        The assembled results (also on processes other than rank 0).
    """
    from regionattack.data import check_size_divisible, load_dataset

    workers = start_workers(config.device)
    try:
        return _run(config, workers, load_dataset, check_size_divisible)
    finally:
        stop_workers()


def _run(config: BenchConfig, workers: Workers, load_dataset, check_size_divisible) -> dict:
    out = Path(config.out)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    model, checkpoint_meta = load_model(config)
    model = model.to(workers.device).eval()
    size = config.size or (tuple(checkpoint_meta["size"]) if "size" in checkpoint_meta else None)
    if size is None:
        raise ValueError("give --size HEIGHTxWIDTH (the checkpoint does not record one)")
    size = check_size_divisible(tuple(size), config.stride)
    dataset = load_dataset(
        config.dataset, config.root, config.split, size=size, max_images=config.max_images
    )
    num_classes = len(dataset.classes)
    with torch.no_grad():
        probe = model(torch.zeros(1, 3, *size, device=workers.device))
    from regionattack.latent import latent_of, model_logits

    if model_logits(probe).shape[1] != num_classes:
        raise ValueError(
            f"the model predicts {model_logits(probe).shape[1]} classes but {config.dataset} has "
            f"{num_classes}"
        )
    num_channels = latent_of(model, torch.zeros(1, 3, *size, device=workers.device)).shape[1]

    def batches(limit: int | None = None) -> DataLoader:
        count = len(dataset) if limit is None else min(limit, len(dataset))
        return DataLoader(Subset(dataset, workers.shard(count)), batch_size=config.batch_size)

    attacked_region = region_mask(config.attack_region, size)  # checks the name before any work
    unknown = [name for name in config.attacks if name not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}; choose from {list(ATTACKS)}")
    masks = {name: region_mask(name, size) for name in ("left", "center", "cell")}
    setting = Setting(model, batches, num_classes, masks, workers, config.progress)
    store = ResultStore(
        out / "results.json", config.fingerprint(), assemble=assemble, writer=workers.is_main
    )
    store.meta.update(
        {
            "environment": _environment(workers),
            "args": {**asdict(config), "size": list(size)},
            "model": {
                "checkpoint_meta": checkpoint_meta,
                "checkpoint_sha256": checkpoint_digest(config.checkpoint)
                if config.checkpoint
                else None,
                "latent_channels": num_channels,
            },
            "images": len(dataset),
            "classes": list(dataset.classes),
        }
    )
    store.meta.setdefault("timings", {})
    timings = store.meta["timings"]
    timings["setup_seconds"] = time.perf_counter() - start

    if "clean" not in store:
        mark = time.perf_counter()
        mious = evaluate_clean(setting).mious()
        timings["clean_seconds"] = time.perf_counter() - mark
        store.put(
            "clean",
            {**_part_mious(mious), "images": len(dataset)},
        )

    rankings: dict[str, ChannelRanking] = {}
    wanted = dict(RANKINGS)
    if "PositionChannelAttack" in config.attacks:  # ranks the attack's region when not listed
        wanted.setdefault(f"gradient-{config.attack_region}", ("gradient", config.attack_region))
    for name, (method, region) in wanted.items():
        key = f"ranking/{name}"
        path = out / "rankings" / f"{name}.json"
        if key in store and path.exists():
            rankings[name] = ChannelRanking.load(path)
            continue
        mark = time.perf_counter()
        if method == "flip" or region is None:
            rankings[name] = rank(setting, method, region)
        else:
            rankings[name] = rank(setting, method, region_mask(region, size))
        if workers.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            rankings[name].save(path)
        timings[f"rank_{name}_seconds"] = time.perf_counter() - mark
        store.put(
            key, {"file": str(path.relative_to(out)), "top10": rankings[name].top(10).tolist()}
        )

    if "ablation" not in store:
        selections = _selections(rankings, num_channels, config.random_draws, config.seed)
        confusions, sweep = ablation_sweep(setting, selections)
        if workers.is_main:
            logger.info(
                "ablation sweep: %d configurations, %.1f s; cached latent %.3f s/config vs full "
                "forward %.3f s/config: %.1fx faster",
                len(selections),
                sweep["seconds"],
                sweep.get("cached_seconds_per_config", float("nan")),
                sweep.get("naive_seconds_per_config", float("nan")),
                sweep.get("speedup", float("nan")),
            )
        rows = [
            _ablation_row(selection, confusion, num_channels)
            for selection, confusion in zip(selections, confusions, strict=True)
        ]
        store.put("ablation", {"rows": rows, "timings": sweep})

    attack_images = config.attack_images or config.max_images
    for eps in config.eps:
        for name in config.attacks:
            key = f"attack/{name}/{eps}"
            if key in store:
                continue
            torch.manual_seed(config.seed)
            attack = build_attack(
                name,
                model,
                eps / 255,
                attacked_region,
                steps=config.attack_steps,
                seed=config.seed,
                ranking=rankings.get(f"gradient-{config.attack_region}"),
            )
            outcome = run_attack(
                setting,
                attack,
                attacked_region,
                description=f"{name} eps {eps}/255",
                max_images=attack_images,
                whole_image_labels=name == "PGD",
                seed=config.seed,
            )
            if workers.is_main and outcome.examples is not None:
                examples = out / "examples" / f"{name}-{eps}.pt"
                examples.parent.mkdir(parents=True, exist_ok=True)
                torch.save(outcome.examples, examples)
            row = _attack_row(name, eps, config, outcome)
            store.put(key, row)
            if workers.is_main:
                logger.info(
                    "%s eps %d/255: mIoU inside %.3f (drop %.3f), outside %.3f (drop %.3f), "
                    "specificity %.1f, %.2f s/image",
                    name,
                    eps,
                    row["miou_inside"],
                    row["drop_inside"],
                    row["miou_outside"],
                    row["drop_outside"],
                    row["specificity"],
                    row["seconds_per_image"],
                )

    if "fidelity" not in store and config.fidelity_channels:
        mark = time.perf_counter()
        generator = torch.Generator().manual_seed(config.seed)
        count = min(config.fidelity_channels, num_channels)
        sample = torch.randperm(num_channels, generator=generator)[:count].sort().values
        overall = {name: rankings[name] for name in ("flip", "gradient")}
        result = ranking_fidelity(setting, overall, sample)
        result["seconds"] = time.perf_counter() - mark
        store.put("fidelity", result)

    timings["total_seconds_this_run"] = time.perf_counter() - start
    store.write()
    results = assemble(store.units) | {"meta": store.meta}
    if workers.is_main:
        from regionattack.bench.report import write_report

        write_report(results, out, num_classes=num_classes, region=config.attack_region)
    workers.barrier()
    return results


def checkpoint_digest(path: str) -> str:
    """Short SHA-256 of a checkpoint file (recorded in the report)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
