"""``regionattack demo``: the whole story on one small model, with no data and no downloads.

Generates street scenes (or loads CamVid), trains a small DeepLabV3 on the CPU (cached), then runs
a small configuration of the benchmark (:func:`regionattack.bench.runner.run_experiments`) on
it: the flip and gradient rankings (overall and for the left half), top-k zeroing against random-k,
and :class:`~regionattack.RegionAttack` and its peers on the left half. Same code, same
``results.json`` schema and report as ``regionattack bench``; a rerun with the same settings
resumes from the results file.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from regionattack._checks import check_nonnegative_int, state_digest
from regionattack._files import torch_save_atomic
from regionattack._state import forked_rng
from regionattack.bench.identity import data_identity
from regionattack.bench.report import attack_table, format_table, summarize_ablation
from regionattack.bench.run import Run
from regionattack.bench.runner import BenchConfig, run_experiments
from regionattack.maps import VulnerabilityMap, map_cells, vulnerability_map
from regionattack.models import build_model, train_segmenter
from regionattack.normalization import IMAGENET_MEAN, IMAGENET_STD, with_normalization

ARCHITECTURE = "smp:DeepLabV3:resnet18"
# Output stride 16 and a 64-channel ASPP with small rates keep a CPU step under a second at 96x128.
ARCHITECTURE_OPTIONS = {
    "encoder_output_stride": 16,
    "decoder_channels": 64,
    "decoder_atrous_rates": (2, 4, 6),
}
RANKINGS = ("flip", "gradient", "flip-left", "gradient-left")


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
    map_grid: int = 3
    progress: bool = True

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

    def bench_config(self, out: str | os.PathLike) -> BenchConfig:
        """The benchmark configuration the demo runs: rankings, ablation and attacks on the left.

        The left half is attacked by RegionAttack (one entry per objective), the region-restricted
        PGD baseline, PositionChannelAttack with the left-ranked channels and whole-image PGD;
        uniform noise of the same radius is the reference for pixels changed by chance.
        Rankings are made on the evaluation images themselves, without labels (targets are the
        model's clean predictions): the setting of an attacker who ranks the batch it attacks.
        """
        attacks = tuple(f"RegionAttack[{objective}]" for objective in self.objectives)
        return BenchConfig(
            dataset=self.data,
            root=str(self.root or ""),
            out=str(out),
            attack_images=self.attack_images,
            batch_size=self.batch_size,
            eps=(self.eps,),
            attack_steps=self.attack_steps,
            attacks=(*attacks, "RegionPGD", "PositionChannelAttack", "PGD", "UniformNoise"),
            attack_region="left",
            random_draws=self.random_draws,
            fidelity_channels=0,
            rankings=RANKINGS,
            seed=self.seed,
            progress=self.progress,
        )


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
        for split, pairs, wanted in (
            ("train", train, config.train_images),
            ("val", evaluation, config.eval_images),
        ):
            if len(pairs[0]) < wanted:
                raise ValueError(
                    f"asked for {wanted} CamVid {split} images; {config.root} holds "
                    f"{len(pairs[0])} (--{'train' if split == 'train' else 'eval'}-images)"
                )
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
    path = cache_dir() / f"demo-{config.data}-{config.cache_key()}.pt"
    info = {"checkpoint": str(path), "cached": False}
    # The weights and the training's dropout draw from torch's generator seeded with the demo's
    # seed (as they always have); the caller's random state is restored afterwards.
    with forked_rng():
        torch.manual_seed(config.seed)
        model = demo_model(num_classes)
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
    torch_save_atomic({"state_dict": model.model.state_dict(), "meta": meta}, path)
    info.update(train_seconds=seconds, final_loss=meta["final_loss"])
    return model.eval(), info


def run_demo(config: DemoConfig, out_dir: str | os.PathLike, *, retrain: bool = False) -> dict:
    """Run the demo; write ``results.json``, ``report.md`` and figures to ``out_dir``.

    ``out_dir`` is locked for the whole demo: a second process on it is refused at once.

    Returns:
        The benchmark's results (``clean``, ``ablation``, ``attacks``, ``meta``), with
        ``meta["model"]`` describing the trained model (``cached``, ``checkpoint``, seconds).

    Raises:
        FolderInUse: While another process runs in ``out_dir``.
    """
    bench = config.bench_config(out_dir)
    bench.validate()  # before the data is made and the model trained
    with Run(out_dir) as run:
        return _demo(config, bench, run, retrain)


def _demo(config: DemoConfig, bench: BenchConfig, run: Run, retrain: bool) -> dict:
    start = time.perf_counter()
    data = load_data(config)
    data_seconds = time.perf_counter() - start
    model, train_info = trained_model(config, data, retrain=retrain)
    train_info.update(architecture=ARCHITECTURE, data_seconds=data_seconds, demo=asdict(config))
    train_info["load_or_train_seconds"] = time.perf_counter() - start - data_seconds
    evaluation = TensorDataset(data["eval_images"], data["eval_labels"])
    evaluation.classes = data["classes"]  # type: ignore[attr-defined]
    results = run_experiments(bench, model, evaluation, model_meta=train_info, run=run)
    map_start = time.perf_counter()
    results["map"], results["map_seconds"], computed = demo_map(config, model, evaluation, run)
    results["map_seconds_this_run"] = time.perf_counter() - map_start if computed else 0.0
    return results


def demo_map(
    config: DemoConfig, model: nn.Module, evaluation: TensorDataset, run: Run
) -> tuple[VulnerabilityMap | None, float, bool]:
    """RegionAttack on each cell of a ``map_grid`` grid over the attacked images (None when 0).

    The map is kept in ``map.json`` of the run's folder (a rerun with the same model, images and settings
    reads it back) and written as ``map.md`` and ``map.png``.

    Returns:
        The map, the seconds it took when it was computed, and whether it was computed now
        (False: read back, or no map).
    """
    if not check_nonnegative_int(config.map_grid, "map_grid"):
        return None, 0.0, False
    count = min(config.attack_images, len(evaluation))
    images, labels = evaluation.tensors[0][:count], evaluation.tensors[1][:count]
    cells, shape = map_cells(config.map_grid, tuple(images.shape[-2:]))
    settings = {
        "attack": "RegionAttack", "eps": config.eps, "steps": config.attack_steps,
        "seed": config.seed, "images": count, "labels": True, "grid": list(shape),
    }  # fmt: skip
    fingerprint = {
        **settings,
        "data": data_identity(evaluation, count),
        "model_state": state_digest(model),
    }
    store = run.results(fingerprint, name="map.json")
    computed = "map" not in store

    def compute() -> dict:
        start = time.perf_counter()
        vmap = vulnerability_map(
            model, images, grid=config.map_grid, labels=labels, eps=config.eps,
            steps=config.attack_steps, seed=config.seed, batch_size=config.batch_size,
            progress=config.progress,
        )  # fmt: skip
        return {"rows": vmap.rows(), "seconds": time.perf_counter() - start}

    stored = store.unit("map", compute)
    vmap = VulnerabilityMap.from_rows(cells, shape, stored["rows"], settings)
    vmap.save(run.folder, images[0])
    return vmap, stored["seconds"], computed


def report(results: dict) -> str:
    """Human-readable tables of a demo run."""
    clean = results["clean"]
    model = results["meta"]["model"]
    lines = [
        f"model: {model['architecture']} "
        f"({'cached' if model['cached'] else 'trained now'}: {model['checkpoint']})",
        f"clean mIoU: all {clean['miou']:.3f}, left {clean['miou_left']:.3f}, "
        f"right {clean['miou_right']:.3f}",
        "",
        "Zeroing top-k channels (mIoU; random = mean of draws):",
    ]
    summary = [r for r in summarize_ablation(results["ablation"]) if r["k"] > 0]
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
    lines.append(attack_table(results["attacks"]))
    vmap = results.get("map")
    if vmap is not None:
        rows, cols = vmap.shape
        lines += [
            "",
            f"Where can it be broken? RegionAttack on each cell of a {rows}x{cols} grid "
            f"({vmap.settings['images']} images; map.png):",
            vmap.table(),
            "weakest cells by mIoU drop (row, column): "
            + ", ".join(str(divmod(j, cols)) for j in vmap.weakest()[:3]),
        ]
    recorded = results["meta"]["timings"]
    units = results["meta"].get("seconds", {})
    timings = {
        "data": model["data_seconds"],
        "model": model["load_or_train_seconds"],
        "clean": units.get("clean", 0.0),
        "rank": sum(v for k, v in units.items() if k.startswith("ranking/")),
        "ablation": results.get("ablation_timings", {}).get("seconds", 0.0),
        "attacks": sum(r["seconds_per_image"] * r["images"] for r in results["attacks"]),
        "map": results.get("map_seconds", 0.0),
        "total": model["data_seconds"]
        + model["load_or_train_seconds"]
        + recorded.get("total_seconds_this_run", 0.0)
        + results.get("map_seconds_this_run", 0.0),
    }
    lines += [
        "",
        "timings (s): " + ", ".join(f"{key} {value:.1f}" for key, value in timings.items()),
    ]
    return "\n".join(lines)
