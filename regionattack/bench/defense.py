"""Defense evaluation: how much position a model encodes, and what the attacks still do to it.

:func:`evaluate_defense` runs the same measurements on several models (a baseline and copies
trained with a defense, e.g. AugShift or reflection padding) over the same images:

* clean mIoU (all pixels, inside and outside the attacked region);
* the position probe (:func:`regionattack.probe.position_readout`), plain and PermuteNet;
* shift sensitivity: how far the pooled latent moves when the image is shifted (AugShift's
  penalty on the probe images, :func:`regionattack.defenses.augshift_loss`), relative to how far
  it moves between two different images;
* mIoU with the top-k flip- and gradient-ranked channels zeroed vs k random channels;
* each attack at each radius: mIoU inside and outside the region, specificity (drop inside /
  drop outside); a whole-image attack (``PGD``, see :class:`~regionattack.PGD`) is measured the
  same way and reported by its whole-image mIoU.

Results are plain dictionaries (JSON-ready); :class:`DefenseReport` turns them into a Markdown
table and a figure. With ``out`` the results are written to ``out/results.json`` after every
finished unit, and a rerun with the same models and settings skips what is already there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from regionattack._checks import (
    check_images,
    check_nonnegative_float,
    check_nonnegative_int,
    check_positive_int,
    check_seed,
    model_device,
    model_dtype,
    model_inputs,
    state_digest,
)
from regionattack._state import frozen
from regionattack.attacks.registry import attack_class, parse_region_attack_name
from regionattack.bench.attacking import run_attack, suite_attack, summarize_attack
from regionattack.bench.defense_report import DefenseReport, clean_entry, probe_entry
from regionattack.bench.distributed import Workers
from regionattack.bench.environment import environment
from regionattack.bench.identity import data_identity
from regionattack.bench.radius import check_radii, in_255ths, radius_label
from regionattack.bench.rankings import rank
from regionattack.bench.region_names import region_mask
from regionattack.bench.run import Run
from regionattack.bench.setting import Setting, evaluate_clean
from regionattack.bench.store import field_problem, numbers_problem
from regionattack.bench.sweep import ablation_sweep, channel_selections
from regionattack.latent import latent_of, model_logits

__all__ = ["DEFENSE_ATTACKS", "evaluate_defense"]

#: The attacks :func:`evaluate_defense` runs unless told otherwise (any registered name may be given).
DEFENSE_ATTACKS = ("RegionAttack", "PGD")


def _as_dataset(data: object) -> Dataset:
    if isinstance(data, tuple) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        images, labels = check_images(data[0]), data[1]
        if labels.shape != (images.shape[0], *images.shape[-2:]):
            raise ValueError(
                "data as a tuple must be (images (N, C, H, W), labels (N, H, W)); got shapes "
                f"{tuple(images.shape)} and {tuple(labels.shape)}"
            )
        return TensorDataset(images, labels.long())
    if isinstance(data, Dataset):
        return data
    raise TypeError(
        "data must be a Dataset of (image, label) pairs or a tuple (images, labels); "
        f"got {type(data).__name__}"
    )


def _check_models(models: object) -> dict[str, nn.Module]:
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty mapping {name: model}")
    for name, model in models.items():
        if not isinstance(name, str) or "/" in name or not name:
            raise ValueError(f"model names must be non-empty strings without '/'; got {name!r}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"models[{name!r}] must be an nn.Module; got {type(model).__name__}")
        try:
            model_dtype(model)
        except ValueError as error:
            raise ValueError(f"models[{name!r}]: {error}") from None
    return dict(models)


def evaluate_defense(
    models: Mapping[str, nn.Module],
    data: Dataset | tuple[torch.Tensor, torch.Tensor],
    *,
    attacks: Sequence[str] = DEFENSE_ATTACKS,
    eps: Sequence[float] = (2 / 255, 4 / 255, 8 / 255),
    region: str = "left",
    steps: int = 10,
    k_fraction: float = 0.05,
    random_draws: int = 5,
    max_images: int | None = None,
    attack_images: int | None = None,
    probe_images: int = 64,
    probe_grid: int = 3,
    probe_epochs: int = 200,
    batch_size: int = 8,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
) -> DefenseReport:
    """Measure position information and attack outcomes for every model on the same images.

    Rankings are label-free and made on the evaluated images (the model's own predictions are the
    targets), as an attacker ranking the batch it attacks would. Every model is left as it was
    (training flags, ``requires_grad``, buffers).

    Args:
        models: ``{name: model}``; each takes (N, 3, H, W) images in [0, 1] (e.g. behind
            :func:`~regionattack.with_normalization`) and returns (N, classes, H, W) logits.
        data: A Dataset of ``(image, label)`` pairs or a tuple ``(images, labels)``; labels use
            255 for ignored pixels.
        attacks: Registered attack names (:data:`regionattack.attacks.ATTACKS`), options in
            brackets (``"SEA"``, ``"CosPGD[apgd]"``, see
            :func:`~regionattack.attacks.registry.parse_region_attack_name`).
        eps: Attack radii (L-inf, images in [0, 1]: ``8 / 255``, not 8); step size eps / 4.
        region: Attacked and measured region: ``left``, ``right``, ``top``, ``bottom``,
            ``center`` or ``cell`` (the top-left quadrant).
        steps: Attack iterations.
        k_fraction: Share of the latent channels zeroed in the top-k comparison (k >= 1).
        random_draws: Random channel sets of the same size (mean and std reported).
        max_images: Evaluate the first N images (default: all).
        attack_images: Attack the first N of them (default: all evaluated).
        probe_images: Images for the position probe (the first N; at least 6).
        probe_grid: Cells per side of the probe's canvas.
        probe_epochs: Training epochs of the probe's read-out.
        batch_size: Images per forward pass.
        seed: Seeds the random channel draws, the probe and the attacks' random starts.
        out: Folder for ``results.json`` (written after every unit; a rerun with the same models
            images and settings resumes; anything else is refused, naming what differs),
            ``report.md`` and ``defenses.png``. None keeps it in memory.
        progress: Show progress bars.

    Returns:
        A :class:`DefenseReport`.

    Raises:
        TypeError: If ``models`` or ``data`` has the wrong type.
        ValueError: For an unknown attack or region, a radius outside [0, 1], a setting out of
            range, models whose outputs disagree in class count, too few probe images, or a
            result file of another configuration (models, images or settings) in ``out``.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> _ = torch.manual_seed(0)
        >>> images, labels = torch.rand(6, 3, 16, 16), torch.randint(0, 3, (6, 16, 16))
        >>> nets = {"a": TinySegmenter(num_classes=3).eval(), "b": TinySegmenter(num_classes=3)}
        >>> report = evaluate_defense(nets, (images, labels), eps=(8 / 255,), steps=1, probe_images=6,
        ...                           probe_epochs=2, random_draws=1, progress=False)
        >>> sorted(report.models["a"])
        ['ablation', 'attacks', 'clean', 'probe', 'probe_permuted', 'shift']
        >>> nets["b"].training  # left as it was
        True
    """
    models = _check_models(models)
    dataset = _as_dataset(data)
    settings, num_classes = _settings(
        models,
        dataset,
        attacks=attacks,
        eps=eps,
        region=region,
        steps=steps,
        k_fraction=k_fraction,
        random_draws=random_draws,
        max_images=max_images,
        attack_images=attack_images,
        probe_images=probe_images,
        probe_grid=probe_grid,
        probe_epochs=probe_epochs,
        batch_size=batch_size,
        seed=seed,
    )
    count, mask = settings["images"], region_mask(region, tuple(settings["size"]))
    device = model_device(next(iter(models.values())), torch.device("cpu"))
    fingerprint = {
        **settings,
        "data": data_identity(dataset, count),
        "models": {n: state_digest(m) for n, m in models.items()},
    }
    evaluated = Subset(dataset, range(count))
    results: dict[str, dict[str, Any]] = {}
    with Run(out) as run:  # out=None: kept in memory
        store = run.results(fingerprint, check=unit_problem)
        store.meta["settings"] = settings
        store.meta["environment"] = environment(device)
        for name, model in models.items():
            with frozen(model):
                setting = Setting(
                    model,
                    evaluated,
                    batch_size,
                    num_classes,
                    {"region": mask},
                    Workers(device=device),
                    progress,
                )
                results[name] = _evaluate_model(name, setting, store.unit, settings, mask)
        report = DefenseReport(settings, results, dict(store.meta.get("seconds", {})))
        if out is not None:
            report.save(out)
    return report


def _settings(
    models: dict[str, nn.Module],
    dataset: Dataset,
    *,
    attacks: Sequence[str],
    eps: Sequence[float],
    region: str,
    steps: int,
    k_fraction: float,
    random_draws: int,
    max_images: int | None,
    attack_images: int | None,
    probe_images: int,
    probe_grid: int,
    probe_epochs: int,
    batch_size: int,
    seed: int,
) -> tuple[dict[str, Any], int]:
    """:func:`evaluate_defense`'s settings, checked and completed, and the models' class count."""
    for name in attacks:
        parse_region_attack_name(name)
    eps = check_radii(eps)
    for value, name in ((steps, "steps"), (batch_size, "batch_size"), (probe_grid, "probe_grid")):
        check_positive_int(value, name)
    check_positive_int(probe_epochs, "probe_epochs")
    for value, name in ((max_images, "max_images"), (attack_images, "attack_images")):
        if value is not None:
            check_positive_int(value, name)
    check_nonnegative_int(random_draws, "random_draws")
    if check_seed(seed) is None:
        raise TypeError("seed must be an int; got None")
    k_fraction = check_nonnegative_float(k_fraction, "k_fraction")
    if not 0 < k_fraction <= 1:
        raise ValueError(f"k_fraction must be in (0, 1]; got {k_fraction}")
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    if count == 0:
        raise ValueError("no images to evaluate")
    first_image = dataset[0][0]
    size = tuple(first_image.shape[-2:])
    region_mask(region, size)  # checks the name
    if not 6 <= probe_images <= count:  # the probe holds out 30% and needs 2 in each split
        raise ValueError(f"probe_images must be in [6, {count}] (the evaluated images)")
    device = model_device(next(iter(models.values())), torch.device("cpu"))
    num_classes, num_channels = _shapes(models, first_image.to(device))
    k = max(1, math.ceil(k_fraction * num_channels))
    settings = {
        "images": count,
        "attack_images": count if attack_images is None else min(attack_images, count),
        "size": list(size),
        "attacks": list(attacks),
        "eps": list(eps),
        "region": region,
        "steps": steps,
        "k_fraction": k_fraction,
        "k": k,
        "channels": num_channels,
        "random_draws": random_draws,
        "probe_images": probe_images,
        "probe_grid": probe_grid,
        "probe_epochs": probe_epochs,
        "batch_size": batch_size,
        "seed": seed,
    }
    return settings, num_classes


_NUMBER = (int, float)


def unit_problem(key: str, value: object) -> str | None:
    """What is wrong with a stored unit of the defense harness's ``results.json``, or None.

    Example:
        >>> unit_problem("base/clean", 5), unit_problem("base/shift", {"ratio": 0.4})
        ('expected an object of numbers, got int', None)
    """
    part = key.split("/", 2)[1] if key.count("/") else ""
    if part in ("clean", "shift"):
        return numbers_problem(value)
    if part in ("probe", "probe_permuted"):
        return field_problem(
            value, {"accuracy": _NUMBER, "chance": _NUMBER, "per_cell_accuracy": list}
        )
    if part == "ablation":
        kinds = {"k": int, "flip": _NUMBER, "gradient": _NUMBER, "random": list}
        return field_problem(value, {**kinds, "random_mean": _NUMBER, "random_std": _NUMBER})
    if part == "attack":
        return field_problem(value, {"attack": str}) or numbers_problem(value, names=True)
    return None


def _shapes(models: dict[str, nn.Module], image: torch.Tensor) -> tuple[int, int]:
    """Classes and latent channels, the same for every model."""
    found = set()
    for model in models.values():
        images = model_inputs(model, image[None])
        with frozen(model), torch.no_grad():
            classes = model_logits(model(images)).shape[1]
            channels = latent_of(model, images).shape[1]
        found.add((classes, channels))
    if len(found) != 1:
        raise ValueError(f"the models disagree in (classes, latent channels): {sorted(found)}")
    return found.pop()


def _evaluate_model(name, setting: Setting, measure, settings: dict, mask) -> dict[str, Any]:
    from regionattack.probe import position_readout

    result: dict[str, Any] = {}
    result["clean"] = clean_entry(measure(f"{name}/clean", lambda: evaluate_clean(setting).mious()))
    probe_batch = torch.cat([images for images, _ in setting.batches(settings["probe_images"])])
    probe_batch = model_inputs(setting.model, probe_batch)
    for key, permute in (("probe", False), ("probe_permuted", True)):
        probe = measure(
            f"{name}/{key}",
            lambda permute=permute: position_readout(
                setting.model,
                probe_batch,
                grid=settings["probe_grid"],
                permute=permute,
                seed=settings["seed"],
                epochs=settings["probe_epochs"],
            ).to_dict(),
        )
        result[key] = probe_entry(probe)
    result["shift"] = measure(
        f"{name}/shift", lambda: _shift_sensitivity(setting, probe_batch, settings)
    )
    result["ablation"] = measure(f"{name}/ablation", lambda: _top_k_vs_random(setting, settings))
    rankings: dict[str, object] = {}  # the region's ranking, made only if an attack unit needs it

    def region_ranking(attack_name: str):
        if attack_class(attack_name).ranking_argument is None:
            return None
        if "region" not in rankings:
            rankings["region"] = rank(setting, "gradient", mask)
        return rankings["region"]

    result["attacks"] = {}
    for attack_name in settings["attacks"]:
        for radius in settings["eps"]:
            key = f"{attack_name}/{radius_label(radius)}"
            result["attacks"][key] = measure(
                f"{name}/attack/{key}",
                lambda attack_name=attack_name, radius=radius: _attack(
                    setting, attack_name, radius, region_ranking(attack_name), settings, mask
                ),
            )
    return result


def _shift_sensitivity(setting: Setting, images: torch.Tensor, settings: dict) -> dict[str, float]:
    """AugShift's penalty on ``images`` over twice the across-image variance of the pooled latent.

    The penalty is the mean squared distance between the pooled latents of two views of the same
    image shifted by up to a quarter of its size; two *different* images are on average
    ``2 * variance`` apart. A ratio of 0 means the pooled latent ignores shifts; 1 means a shift
    moves it as far as changing the image does. Being a ratio, it cannot be lowered by shrinking
    the latent.
    """
    from regionattack.defenses import augshift_loss

    generator = torch.Generator(images.device).manual_seed(settings["seed"])
    chunks = images.split(16)
    with torch.no_grad():
        mse = sum(
            float(augshift_loss(setting.model, chunk, max_shift=0.25, generator=generator))
            * len(chunk)
            for chunk in chunks
        ) / len(images)
        pooled = torch.cat([latent_of(setting.model, chunk).mean(dim=(2, 3)) for chunk in chunks])
    variance = float(pooled.var(dim=0, unbiased=False).mean())
    return {
        "mse": mse,
        "image_variance": variance,
        "ratio": mse / max(2 * variance, 1e-12),
        "max_shift": 0.25,
    }


def _top_k_vs_random(setting: Setting, settings: dict) -> dict[str, Any]:
    """MIoU with the top-k flip / gradient channels zeroed and with k random channels."""
    k, channels = settings["k"], settings["channels"]
    rankings = [("overall", rank(setting, method, None)) for method in ("flip", "gradient")]
    selections = channel_selections(
        rankings,
        [k],
        channels,
        random_draws=settings["random_draws"],
        seed=settings["seed"],
        include_clean=False,
    )
    confusions, _ = ablation_sweep(setting, selections, timing_configs=0)
    mious = [confusion.mious()["all"] for confusion in confusions]
    random = torch.tensor(mious[2:], dtype=torch.float64)
    return {
        "k": k,
        "flip": mious[0],
        "gradient": mious[1],
        "random": mious[2:],
        "random_mean": float(random.mean()),
        "random_std": float(random.std(unbiased=False)),
        "flip_channels": selections[0].channels.tolist(),
        "gradient_channels": selections[1].channels.tolist(),
    }


def _attack(setting: Setting, name: str, radius: float, ranking, settings: dict, mask) -> dict:
    attack = suite_attack(
        name,
        setting.model,
        radius,
        mask,
        steps=settings["steps"],
        seed=settings["seed"],
        ranking=ranking,
    )
    outcome = run_attack(
        setting,
        attack,
        mask,
        description=f"{name} eps {radius_label(radius)}/255",
        max_images=settings["attack_images"],
        keep_examples=0,
        seed=settings["seed"],
    )
    return {
        "attack": name,
        "eps": radius,
        "eps_255": in_255ths(radius),
        **summarize_attack(outcome),
    }
