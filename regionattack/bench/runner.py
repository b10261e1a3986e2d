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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from regionattack._checks import (
    check_choice,
    check_device,
    check_nonnegative_int,
    check_positive_int,
    check_seed,
    model_device,
    model_dtype,
    state_digest,
)
from regionattack._files import torch_save_atomic
from regionattack._state import frozen
from regionattack.attacks.registry import attack_class, parse_region_attack_name
from regionattack.bench.attacking import run_attack, suite_attack, summarize_attack
from regionattack.bench.distributed import Workers, start_workers, stop_workers
from regionattack.bench.environment import environment
from regionattack.bench.identity import data_identity
from regionattack.bench.radius import check_radii, in_255ths, radius_label
from regionattack.bench.rankings import rank, ranking_fidelity
from regionattack.bench.region_names import REGION_NAMES, region_mask
from regionattack.bench.run import Run, entered
from regionattack.bench.setting import Setting, evaluate_clean
from regionattack.bench.store import ResultStore, field_problem, numbers_problem
from regionattack.bench.sweep import Selection, ablation_ks, ablation_sweep, channel_selections
from regionattack.latent import find_layer
from regionattack.metrics import MaskedConfusions
from regionattack.normalization import IMAGENET_MEAN, IMAGENET_STD
from regionattack.ranking import ChannelRanking, check_ranking_matches

logger = logging.getLogger(__name__)

#: The attacks a benchmark runs unless told otherwise (any registered name may be given).
DEFAULT_ATTACKS = (
    "RegionAttack",
    "PositionChannelAttack",
    "RegionPGD",
    "SegPGD",
    "CosPGD",
    "SEA",
    "PGD",
    "UniformNoise",
)

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
    eps: tuple[float, ...] = (2 / 255, 4 / 255, 8 / 255)
    attack_steps: int = 10
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    attack_region: str = "left"
    random_draws: int = 5
    fidelity_channels: int = 32
    rankings: tuple[str, ...] = tuple(RANKINGS)
    seed: int = 0
    device: str | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Check every experiment setting before any work starts (errors name the setting)."""
        check_radii(self.eps)
        check_device(self.device)
        for name in ("attack_steps", "batch_size", "stride"):
            check_positive_int(getattr(self, name), name)
        for name in ("max_images", "attack_images", "num_classes"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        for name in ("random_draws", "fidelity_channels"):
            check_nonnegative_int(getattr(self, name), name)
        if check_seed(self.seed) is None:
            raise TypeError("seed must be an int; got None")
        for name in self.attacks:
            parse_region_attack_name(name)
        for name in self.rankings:
            check_choice(name, "ranking", list(RANKINGS))
        check_choice(self.attack_region, "attack_region", REGION_NAMES)

    def validate_sources(self) -> None:
        """Check the dataset name, its root and the checkpoint file (``regionattack bench``)."""
        from regionattack.data.registry import DATASETS

        check_choice(self.dataset, "dataset", DATASETS)
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {self.checkpoint} is not a file")
        if not Path(self.root).is_dir():
            raise FileNotFoundError(f"dataset root {self.root} is not a folder")

    def fingerprint(self, *, data: dict, model: str, size: tuple[int, int]) -> dict:
        """Everything that determines the numbers (not where they go or how they are shown).

        ``data`` is the :func:`~regionattack.bench.identity.data_identity` of the evaluated images
        and ``model`` the state digest of the model, so a resume never mixes two models or two
        image sets; paths are not part of it (the same files under another spelling resume).
        """
        record = asdict(self)
        for key in ("out", "device", "progress", "root", "checkpoint"):
            record.pop(key)
        record.update(size=list(size), data=data, model_state=model)
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


def unit_problem(key: str, value: object) -> str | None:
    """What is wrong with a stored unit of ``results.json`` (see ``assemble``), or None.

    Example:
        >>> unit_problem("clean", 5), unit_problem("clean", {"all": 0.5, "left": None})
        ('expected an object of numbers, got int', None)
    """
    if key == "clean":
        return numbers_problem(value)
    if key.startswith("ranking/"):
        return field_problem(value, {"file": str, "top10": list})
    if key == "ablation":
        problem = field_problem(value, {"rows": list, "timings": dict})
        rows = [] if problem else value["rows"]
        return problem or next(
            filter(None, (numbers_problem(row, names=True) for row in rows)), None
        )
    if key.startswith("attack/"):
        return field_problem(value, {"attack": str}) or numbers_problem(value, names=True)
    if key == "fidelity":
        return field_problem(value, {"channels": list, "spearman": dict})
    return None


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


def _attack_row(name: str, eps: float, config: BenchConfig, outcome) -> dict:
    return {
        "attack": name,
        "eps": eps,
        "eps_255": in_255ths(eps),
        "region": "image" if attack_class(name).whole_image else config.attack_region,
        "measured_region": config.attack_region,
        "steps": config.attack_steps,
        **summarize_attack(outcome),
    }


def run_benchmark(config: BenchConfig) -> dict:
    """Run (or resume) the benchmark; write results.json, report.md and figures to ``config.out``.

    The output folder is locked first: a second process on it is refused at once (see
    :class:`~regionattack.bench.run.Run`).

    Returns:
        The assembled results (also on processes other than rank 0).

    Raises:
        FolderInUse: While another process runs in ``config.out``.
    """
    from regionattack.data import check_size_divisible, load_dataset

    config.validate()
    config.validate_sources()
    workers = start_workers(config.device)
    try:
        with Run(config.out, writer=workers.is_main) as run:
            start = time.perf_counter()
            model, checkpoint_meta = load_model(config)
            model = model.to(workers.device).eval()  # the bench's own model
            size = config.size or checkpoint_meta.get("size")
            if size is None:
                raise ValueError("give --size HEIGHTxWIDTH (the checkpoint does not record one)")
            size = check_size_divisible(tuple(size), config.stride)
            dataset = load_dataset(
                config.dataset, config.root, config.split, size=size, max_images=config.max_images
            )
            model_meta = {
                "checkpoint_meta": checkpoint_meta,
                "checkpoint_sha256": checkpoint_digest(config.checkpoint)
                if config.checkpoint
                else None,
            }
            return _experiments(config, model, dataset, workers, model_meta, start, run)
    finally:
        stop_workers()


def run_experiments(
    config: BenchConfig,
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    workers: Workers | None = None,
    model_meta: dict | None = None,
    run: Run | None = None,
) -> dict:
    """Run (or resume) every experiment of ``config`` on ``model`` over ``dataset``.

    The part of :func:`run_benchmark` after loading, also used by the demo on its own model and
    images. ``dataset`` yields ``(image, label)`` pairs of one size; its ``classes`` attribute
    (when present) names the classes, else the model's output decides their number.
    ``model_meta`` is recorded under ``meta["model"]``. Writes ``results.json``, ``report.md``
    and figures to ``config.out``, holding its lock (or inside ``run``, when the caller holds it).

    The model is evaluated in eval mode and left as it was (training flags, ``requires_grad``,
    buffers); it must already be on ``workers.device`` (by default the model's device).

    Returns:
        The assembled results (also on processes other than rank 0).
    """
    config.validate()
    workers = workers or Workers(device=model_device(model, torch.device("cpu")))
    with entered(run, config.out, writer=workers.is_main) as held:
        return _experiments(config, model, dataset, workers, model_meta, time.perf_counter(), held)


@dataclass
class _Context:
    """What the experiments of one run share."""

    config: BenchConfig
    setting: Setting
    store: ResultStore
    out: Path
    size: tuple[int, int]
    num_channels: int


def _experiments(
    config: BenchConfig,
    model: torch.nn.Module,
    dataset: Dataset,
    workers: Workers,
    model_meta: dict | None,
    start: float,
    run: Run,
) -> dict:
    with frozen(model):
        context, num_classes = _open(config, model, dataset, workers, model_meta, run)
        context.store.meta.setdefault("timings", {})["setup_seconds"] = time.perf_counter() - start
        context.store.unit("clean", lambda: _clean(context))
        rankings = _rankings(context)
        context.store.unit("ablation", lambda: _ablation(context, rankings))
        _attacks(context, rankings)
        _fidelity(context, rankings)
    store = context.store
    store.meta["timings"]["total_seconds_this_run"] = time.perf_counter() - start
    store.write()
    results = assemble(store.units) | {"meta": store.meta}
    if workers.is_main:
        from regionattack.bench.report import write_report

        write_report(results, context.out, num_classes=num_classes, region=config.attack_region)
    workers.barrier()
    return results


def _open(
    config: BenchConfig,
    model: torch.nn.Module,
    dataset: Dataset,
    workers: Workers,
    model_meta: dict | None,
    run: Run,
) -> tuple[_Context, int]:
    """The evaluated images, the model's shapes and the run's results, checked against each other."""
    from regionattack.latent import latent_of, model_logits

    if config.max_images is not None and config.max_images < len(dataset):
        dataset = Subset(dataset, range(config.max_images))
    if len(dataset) == 0:
        raise ValueError("no images to evaluate")
    size = tuple(dataset[0][0].shape[-2:])
    with torch.no_grad():
        predicted = model_logits(
            model(torch.zeros(1, 3, *size, device=workers.device, dtype=model_dtype(model)))
        ).shape[1]
    classes = getattr(dataset, "classes", None) or getattr(
        getattr(dataset, "dataset", None), "classes", None
    )
    num_classes = len(classes) if classes else predicted
    if predicted != num_classes:
        raise ValueError(
            f"the model predicts {predicted} classes but {config.dataset} has {num_classes}"
        )
    num_channels = latent_of(
        model, torch.zeros(1, 3, *size, device=workers.device, dtype=model_dtype(model))
    ).shape[1]
    masks = {name: region_mask(name, size) for name in ("left", "center", "cell")}
    setting = Setting(
        model, dataset, config.batch_size, num_classes, masks, workers, config.progress
    )
    fingerprint = config.fingerprint(
        data=data_identity(dataset, len(dataset)), model=state_digest(model), size=size
    )
    store = run.results(fingerprint, assemble=assemble, check=unit_problem)
    store.meta.update(
        {
            "environment": environment(workers.device, world_size=workers.world_size),
            "args": {**asdict(config), "size": list(size)},
            "model": {**(model_meta or {}), "latent_channels": num_channels},
            "images": len(dataset),
            "classes": list(classes) if classes else None,
        }
    )
    context = _Context(config, setting, store, Path(config.out), size, num_channels)
    return context, num_classes


def _clean(context: _Context) -> dict:
    mious = evaluate_clean(context.setting).mious()
    return {**_part_mious(mious), "images": len(context.setting.dataset)}


def _wanted_rankings(config: BenchConfig) -> dict[str, tuple[str, str | None]]:
    """The rankings to make: those asked for, and the attacked region's for attacks that take one."""
    wanted = {name: RANKINGS[name] for name in config.rankings}
    if any(attack_class(name).ranking_argument for name in config.attacks):
        wanted.setdefault(f"gradient-{config.attack_region}", ("gradient", config.attack_region))
    return wanted


def _rankings(context: _Context) -> dict[str, ChannelRanking]:
    """Every ranking of the run; each is a unit, its scores kept in ``rankings/NAME.json``."""
    rankings: dict[str, ChannelRanking] = {}
    for name, (method, region) in _wanted_rankings(context.config).items():
        path = context.out / "rankings" / f"{name}.json"
        key = f"ranking/{name}"
        if key in context.store and path.exists():
            rankings[name] = _resumed_ranking(path, method, context)
            continue
        context.store.forget(key)  # its file is gone: rank again

        def compute(name=name, method=method, region=region, path=path) -> dict:
            mask = None if method == "flip" or region is None else region_mask(region, context.size)
            ranking = rank(context.setting, method, region if mask is None else mask)
            if context.setting.workers.is_main:
                path.parent.mkdir(parents=True, exist_ok=True)
                ranking.save(path)
            rankings[name] = ranking
            top = ranking.top(min(10, context.num_channels)).tolist()
            return {"file": str(path.relative_to(context.out)), "top10": top}

        context.store.unit(key, compute)
    return rankings


def _resumed_ranking(path: Path, method: str, context: _Context) -> ChannelRanking:
    """A ranking file of an earlier run, refused unless made by ``method`` on this model."""
    ranking = ChannelRanking.load(path)
    try:
        if ranking.method != method:
            raise ValueError(f"it holds a {ranking.method} ranking, not a {method} one")
        check_ranking_matches(ranking, context.setting.model, find_layer(context.setting.model)[0])
    except ValueError as error:
        raise ValueError(
            f"{path} does not belong to this run ({error}); delete it to rank again, or use "
            "another --out"
        ) from None
    return ranking


def _ablation(context: _Context, rankings: dict[str, ChannelRanking]) -> dict:
    config = context.config
    labelled = [(RANKINGS[name][1] or "overall", rankings[name]) for name in config.rankings]
    selections = channel_selections(
        labelled,
        ablation_ks(context.num_channels),
        context.num_channels,
        random_draws=config.random_draws,
        seed=config.seed,
    )
    confusions, sweep = ablation_sweep(context.setting, selections)
    if context.setting.workers.is_main:
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
        _ablation_row(selection, confusion, context.num_channels)
        for selection, confusion in zip(selections, confusions, strict=True)
    ]
    return {"rows": rows, "timings": sweep}


def _attacks(context: _Context, rankings: dict[str, ChannelRanking]) -> None:
    """Each attack at each radius, a unit each; the first images kept in ``examples/``."""
    config = context.config
    region = region_mask(config.attack_region, context.size)
    for eps in config.eps:
        label = radius_label(eps)
        for name in config.attacks:
            context.store.unit(
                f"attack/{name}/{label}",
                lambda name=name, eps=eps, label=label: _attack(
                    context, name, eps, label, region, rankings
                ),
            )


def _attack(
    context: _Context,
    name: str,
    eps: float,
    label: str,
    region: torch.Tensor,
    rankings: dict[str, ChannelRanking],
) -> dict:
    config, workers = context.config, context.setting.workers
    attack = suite_attack(
        name,
        context.setting.model,
        eps,
        region,
        steps=config.attack_steps,
        seed=config.seed,
        ranking=rankings.get(f"gradient-{config.attack_region}"),
    )
    outcome = run_attack(
        context.setting,
        attack,
        region,
        description=f"{name} eps {label}/255",
        max_images=config.attack_images or config.max_images,
        seed=config.seed,
    )
    if workers.is_main and outcome.examples is not None:
        torch_save_atomic(outcome.examples, context.out / "examples" / f"{name}-{label}.pt")
    row = _attack_row(name, eps, config, outcome)
    if workers.is_main:
        logger.info(
            "%s eps %s/255: mIoU inside %.3f (drop %.3f), outside %.3f (drop %.3f), "
            "specificity %.1f, %.2f s/image",
            name,
            label,
            row["miou_inside"],
            row["drop_inside"],
            row["miou_outside"],
            row["drop_outside"],
            row["specificity"],
            row["seconds_per_image"],
        )
    return row


def _fidelity(context: _Context, rankings: dict[str, ChannelRanking]) -> None:
    """Ranking fidelity, when both the flip and the gradient rankings were made."""
    config = context.config
    chosen = {name: rankings[name] for name in ("flip", "gradient") if name in rankings}
    if not config.fidelity_channels or len(chosen) != 2:
        return

    def compute() -> dict:
        generator = torch.Generator().manual_seed(config.seed)
        count = min(config.fidelity_channels, context.num_channels)
        sample = torch.randperm(context.num_channels, generator=generator)[:count].sort().values
        start = time.perf_counter()
        result = ranking_fidelity(context.setting, chosen, sample)
        return {**result, "seconds": time.perf_counter() - start}

    context.store.unit("fidelity", compute)


def checkpoint_digest(path: str) -> str:
    """Short SHA-256 of a checkpoint file (recorded in the report)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
