"""The contenders of ``benchmarks/perf.py`` and the runner of each of its sections.

A contender is a call without arguments (:data:`~benchmarks.perf_harness.Calls`); the
``*_calls`` functions build a section's contenders on the section's batch, and each ``run_*``
runner times them, measures their peak memory and compares them (:data:`RUNNERS`, one per name
of :data:`SECTIONS`). :func:`run_probe` is the child's side of a CPU memory probe.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

from benchmarks.perf_harness import (
    Bench,
    Calls,
    build_network,
    compare,
    is_out_of_memory,
    time_calls,
    timing,
)
from benchmarks.perf_memory import memory, probe
from regionattack.ablation import ablate_channels, ablated_predictions
from regionattack.attacks import RegionAttack
from regionattack.bench.run import Run
from regionattack.bench.sweep import ablation_ks, channel_selections
from regionattack.latent import latent_of, model_logits, predict, predicted_classes
from regionattack.maps import Mapper, vulnerability_map
from regionattack.ranking import rank_channels

EPS, ALPHA = 8 / 255, 2 / 255
K_FRACTIONS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4)
RANDOM_DRAWS = 5


# ---------------------------------------------------------------------------------- contenders
def input_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One forward, cross-entropy and backward to the input: an attack step without the update."""
    with torch.enable_grad():
        x = images.detach().requires_grad_(True)
        loss = F.cross_entropy(model_logits(model(x)).float(), labels)
        return torch.autograd.grad(loss, x)[0]


def attack_floor(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int):
    """One clean forward, then ``steps`` x :func:`input_gradient`."""
    with torch.no_grad():
        model(images)
    for _ in range(steps):
        grad = input_gradient(model, images, labels)
    return grad


def attack_calls(bench: Bench, images: torch.Tensor, labels: torch.Tensor) -> Calls:
    """RegionAttack (two objectives; PGD and APGD), torchattacks.PGD and the floor on one batch."""
    model, steps = bench.model, bench.args.steps
    common = {"eps": EPS, "alpha": ALPHA, "steps": steps}
    region = RegionAttack(model, "left", **common, seed=0)
    region_apgd = RegionAttack(model, "left", **common, seed=0, optimizer="apgd")
    both = RegionAttack(model, "left", **common, seed=0, objective="both")
    pgd = torchattacks.PGD(model, **common, random_start=True)
    with torch.no_grad():
        logits = model_logits(model(images))
    channels_last = images.contiguous(memory_format=torch.channels_last)  # the model is untouched
    return {
        "pgd": lambda: pgd(images, labels),
        "region": lambda: region(images, labels),
        "region_apgd": lambda: region_apgd(images, labels),
        "region_both": lambda: both(images, labels),
        "floor": lambda: attack_floor(model, images, labels, steps),
        "floor_channels_last": lambda: attack_floor(model, channels_last, labels, steps),
        "argmax": lambda: logits.argmax(dim=1),
        "predicted_classes": lambda: predicted_classes(logits),
    }


def map_calls(bench: Bench, images: torch.Tensor, labels: torch.Tensor) -> Calls:
    """A 3 x 3 vulnerability map (with and without the channel drop) and one RegionAttack."""
    model, steps, batch = bench.model, bench.args.steps, len(images)
    region = RegionAttack(model, "left", eps=EPS, alpha=ALPHA, steps=steps, seed=0)
    options = {"grid": 3, "labels": labels, "eps": EPS, "steps": steps, "batch_size": batch}
    return {
        "region": lambda: region(images, labels),
        "map": lambda: vulnerability_map(model, images, **options),
        "map_no_channels": lambda: vulnerability_map(model, images, channels=False, **options),
        "map_command": lambda: map_command(model, images, options),
    }


def map_command(model: nn.Module, images: torch.Tensor, options: dict):
    """The map as ``regionattack map`` makes it: a unit per cell in a fresh run folder."""
    with tempfile.TemporaryDirectory() as folder, Run(folder) as run:
        mapper = Mapper(model, images, **options)
        return mapper.by_units(run.results({}, name="map.json").unit)


def official_flip_loop(model: nn.Module, host_images: list[np.ndarray], device) -> torch.Tensor:
    """The paper's flip ranking loop, one image at a time from host memory; mean |GAP diff|."""

    def pooled(image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)
        return latent_of(model, x).float().mean(dim=(2, 3))[0]

    total = None
    with torch.no_grad():
        for image in host_images:
            difference = (pooled(image) - pooled(np.ascontiguousarray(image[:, ::-1]))).abs()
            total = difference if total is None else total + difference
    return total / len(host_images)


def ranking_calls(bench: Bench, images: torch.Tensor, labels: torch.Tensor) -> Calls:
    """The flip ranking three ways, the gradient ranking and one forward + backward."""
    model, batch = bench.model, bench.args.batch_size
    host = [image.permute(1, 2, 0).cpu().numpy() for image in images]
    last = build_network(bench.args, bench.device, channels_last=True)
    images_last = images.contiguous(memory_format=torch.channels_last)
    return {
        "flip_official_loop": lambda: official_flip_loop(model, host, bench.device),
        "flip": lambda: rank_channels(model, images, method="flip", batch_size=batch),
        "flip_channels_last": lambda: rank_channels(
            last, images_last, method="flip", batch_size=batch
        ),
        "gradient": lambda: rank_channels(model, images, method="gradient", batch_size=batch),
        "forward_backward": lambda: input_gradient(model, images, labels),
    }


def sweep_selections(bench: Bench, images: torch.Tensor) -> tuple[list[dict], list[torch.Tensor]]:
    """42 channel selections: per k, flip and gradient top-k and seeded random draws."""
    batch = bench.args.batch_size
    with bench.context():
        rankings = {
            method: rank_channels(bench.model, images, method=method, batch_size=batch)
            for method in ("flip", "gradient")
        }
    num_channels = rankings["flip"].num_channels
    chosen = channel_selections(
        [("overall", ranking) for ranking in rankings.values()],
        ablation_ks(num_channels, K_FRACTIONS),
        num_channels,
        random_draws=RANDOM_DRAWS,
        seed=bench.args.seed,
        include_clean=False,
    )
    described = [
        {
            "k": s.k,
            "channels": f"{s.ranking} top-k"
            if s.ranking != "random"
            else f"random draw {s.seed - bench.args.seed}",
        }
        for s in chosen
    ]
    return described, [s.channels for s in chosen]


def naive_sweep(model: nn.Module, images: torch.Tensor, selections: list) -> list[torch.Tensor]:
    """A full forward per selection under ``ablate_channels``."""
    predictions = []
    with torch.no_grad():
        for channels in selections:
            with ablate_channels(model, channels):
                predictions.append(predict(model, images))
    return predictions


def scaling_calls(bench: Bench, images: torch.Tensor, labels: torch.Tensor) -> Calls:
    """The forward alone and one attack step (forward + backward to the input)."""

    def forward():
        with torch.no_grad():
            return bench.model(images)

    return {"forward": forward, "step": lambda: input_gradient(bench.model, images, labels)}


# ---------------------------------------------------------------------------------- sections
def timed_contenders(
    bench: Bench, section: str, build: Callable[[Bench, torch.Tensor, torch.Tensor], Calls]
) -> dict:
    """Time and peak memory of each contender ``build`` makes on the section's batch."""
    size, batch = bench.args.size, bench.args.batch_size
    images, labels = bench.images(batch, size)
    calls = build(bench, images, labels)
    seconds = time_calls(bench, calls, section)
    results = {name: timing(runs, batch) for name, runs in seconds.items()}
    for name in calls:
        results[name]["peak_memory"] = memory(bench, section, name, calls, batch, size)
    return results


def run_attack(bench: Bench) -> dict:
    """Section ``attack``: RegionAttack vs torchattacks.PGD, time and peak memory."""
    results = timed_contenders(bench, "attack", attack_calls)
    goals = [("time_ratio", "<=", 1.10), ("memory_ratio", "<=", 1.10)]
    return {
        "contenders": results,
        "comparisons": [
            compare(results, "region", "pgd", goals),
            compare(results, "region_apgd", "region", [("time_ratio", "<=", 1.05)]),
            compare(results, "region_both", "pgd"),
            compare(results, "floor", "pgd"),
            compare(results, "region", "floor"),
            compare(results, "floor_channels_last", "floor"),
            compare(results, "predicted_classes", "argmax"),
        ],
    }


def run_map(bench: Bench) -> dict:
    """Section ``map``: a 3 x 3 vulnerability map vs one RegionAttack, time and peak memory."""
    results = timed_contenders(bench, "map", map_calls)
    return {
        "contenders": results,
        "comparisons": [
            compare(results, "map", "region", [("time_ratio", "<=", 9.5)]),
            compare(results, "map_no_channels", "region"),
            compare(results, "map", "map_no_channels"),
            compare(results, "map_command", "map", [("time_ratio", "<=", 1.1)]),
        ],
    }


def run_ranking(bench: Bench) -> dict:
    """Section ``ranking``: flip ranking throughput, gradient ranking cost."""
    batch = bench.args.batch_size
    images, labels = bench.images(batch, bench.args.size)
    calls = ranking_calls(bench, images, labels)
    seconds = time_calls(bench, calls, "ranking")
    results = {name: timing(runs, batch) for name, runs in seconds.items()}
    with bench.context():
        official = calls["flip_official_loop"]()
        ours = calls["flip"]().scores.to(official.device)
    return {
        "contenders": results,
        "comparisons": [
            compare(results, "flip", "flip_official_loop"),
            compare(results, "flip_channels_last", "flip"),
            compare(results, "gradient", "forward_backward", [("time_ratio", "<=", 1.2)]),
        ],
        "flip_scores_max_abs_difference": float((official - ours).abs().max()),
        "flip_scores_match": bool(torch.allclose(official, ours, rtol=1e-3, atol=1e-5)),
    }


def run_sweep(bench: Bench) -> dict:
    """Section ``sweep``: ablated_predictions vs a forward per selection."""
    batch = bench.args.batch_size
    images, _ = bench.images(batch, bench.args.size)
    described, selections = sweep_selections(bench, images)
    calls = {
        "naive_loop": lambda: naive_sweep(bench.model, images, selections),
        "ablated_predictions": lambda: ablated_predictions(bench.model, images, selections),
    }
    seconds = time_calls(bench, calls, "sweep")
    results = {name: timing(runs, batch) for name, runs in seconds.items()}
    with bench.context():
        slow, fast = calls["naive_loop"](), calls["ablated_predictions"]()
    equal = [torch.equal(a, b) for a, b in zip(slow, fast, strict=True)]
    return {
        "contenders": results,
        "comparisons": [
            compare(results, "ablated_predictions", "naive_loop", [("speedup", ">=", 3.0)])
        ],
        "selections": described,
        "predictions_equal": all(equal),
        "selections_with_different_predictions": equal.count(False),
    }


def scaling_row(bench: Bench, by: str, size: tuple[int, int], batch: int) -> dict:
    """Time and peak memory of the forward and of one step at one size and batch size."""
    row = {
        "by": by,
        "size": list(size),
        "batch": batch,
        "megapixels": batch * size[0] * size[1] / 1e6,
    }
    try:
        images, labels = bench.images(batch, size)
        calls = scaling_calls(bench, images, labels)
        seconds = time_calls(bench, calls, f"scaling {size[0]}x{size[1]} x{batch}")
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error) and not isinstance(error, MemoryError):
            raise
        if bench.device.type == "cuda":
            torch.cuda.empty_cache()
        return {**row, "skipped": f"out of memory: {str(error).splitlines()[0][:200]}"}
    for name, runs in seconds.items():
        row[name] = timing(runs, batch)
        row[name]["s_per_megapixel"] = row[name]["median_s"] / row["megapixels"]
        row[name]["peak_memory"] = memory(bench, "scaling", name, calls, batch, size)
    del images, labels, calls
    return row


def run_scaling(bench: Bench) -> dict:
    """Section ``scaling``: cost against image size (batch 1) and batch size (at ``--size``)."""
    rows = [scaling_row(bench, "size", size, 1) for size in bench.args.scaling_sizes]
    rows += [scaling_row(bench, "batch", bench.args.size, b) for b in bench.args.scaling_batches]
    return {"rows": rows}


RUNNERS = {
    "attack": run_attack,
    "ranking": run_ranking,
    "sweep": run_sweep,
    "map": run_map,
    "scaling": run_scaling,
}
SECTIONS = tuple(RUNNERS)

#: the sections whose contenders a memory probe can rebuild in a fresh process
PROBED: dict[str, Callable[[Bench, torch.Tensor, torch.Tensor], Calls]] = {
    "attack": attack_calls,
    "map": map_calls,
    "scaling": scaling_calls,
}


def run_probe(bench: Bench) -> int:
    """``--memory-probe SECTION:NAME``: print the contender's peak memory as JSON."""
    section, _, name = bench.args.memory_probe.partition(":")
    if section not in PROBED:
        print(f"perf: error: no memory probe for section {section!r}", file=sys.stderr)
        return 2
    images, labels = bench.images(bench.args.batch_size, bench.args.size)
    calls = PROBED[section](bench, images, labels)
    if name not in calls:
        print(f"perf: error: no contender {name!r} in {section}", file=sys.stderr)
        return 2
    print(json.dumps(probe(bench, calls[name])))
    return 0
