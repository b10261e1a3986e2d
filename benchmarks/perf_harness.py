"""The harness of ``benchmarks/perf.py``: the run's model and batch, timing, ratios, Markdown.

:class:`Bench` holds a run's settings, device and model and makes its seeded batches;
:func:`time_calls` times contenders (``--warmup`` runs each, then ``--repeats`` runs in turn) and
:func:`timing` summarises them; :func:`compare` puts two contenders side by side and checks a
goal; :func:`markdown` and :func:`section_markdown` write the tables (``render_tables`` draws the
perf tables of docs/ with the latter). What is timed lives in :mod:`benchmarks.perf_sections`,
peak memory in :mod:`benchmarks.perf_memory`.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from regionattack.latent import find_layer, predict
from regionattack.models import build_model
from regionattack.normalization import IMAGENET_MEAN, IMAGENET_STD, unwrap, with_normalization

Calls = dict[str, Callable[[], object]]


# ---------------------------------------------------------------------------------- set-up
@dataclass(frozen=True)
class Bench:
    """The run's settings, device and model; knows how to time and measure calls."""

    args: argparse.Namespace
    argv: tuple[str, ...]
    device: torch.device
    model: nn.Module
    probe: Callable[[list[str]], dict] | None = None

    def context(self) -> contextlib.AbstractContextManager:
        """Autocast when ``--autocast`` asks for it, else nothing."""
        if self.args.autocast == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sync(self) -> None:
        """Wait for queued device work (CUDA) so the clock reads finished work."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def progress(self, total: int, desc: str) -> tqdm:
        """A progress bar, silent under ``--quiet``."""
        return tqdm(total=total, desc=desc, disable=self.args.quiet, leave=False)

    def images(self, batch: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Seeded random images (N, 3, H, W) in [0, 1] and the model's clean predictions."""
        generator = torch.Generator().manual_seed(self.args.seed)
        images = torch.rand(batch, 3, *size, generator=generator).to(self.device)
        with torch.no_grad(), self.context():
            labels = predict(self.model, images)
        return images, labels


def compile_blocks(model: nn.Module, backend: str) -> nn.Module:
    """Compile, in place, the ``forward`` of the latent layer and of the blocks beside its path.

    Only ``forward`` is compiled, so the hooks the library puts on the latent layer run eagerly
    around it; the modules above the latent layer (normalisation, the glue calling encoder,
    decoder and head) stay eager. For smp models: encoder, decoder and head are compiled.
    """
    name, layer = find_layer(model)
    inner = unwrap(model)
    parts = name.split(".")
    above = [inner] + [inner.get_submodule(".".join(parts[:i])) for i in range(1, len(parts))]
    beside = [
        child
        for module in above
        for child in module.children()
        if child is not layer and not any(child is kept for kept in above)
    ]
    for block in [layer, *beside]:
        block.forward = torch.compile(block.forward, backend=backend)
    return model


def recompile_limit(limit: int | None) -> contextlib.AbstractContextManager:
    """Within the block, let torch.compile keep ``limit`` variants of each compiled function.

    The contenders call the blocks with several batch sizes, layouts and grad modes; the default
    limit (8) would send the later variants back to eager execution.
    """
    if limit is None:
        return contextlib.nullcontext()
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    return config.patch({name: limit})


def build_network(args: argparse.Namespace, device: torch.device, channels_last=False) -> nn.Module:
    """The seeded model, normalised, frozen, in eval mode on ``device`` (compiled with ``--compile``).

    Parameters are frozen for every contender: attacks and rankings need input (or latent)
    gradients only. RegionAttack freezes them itself; torchattacks.PGD's time and memory are the
    same either way, and compiled blocks are not recompiled for each ``requires_grad`` change.
    """
    torch.manual_seed(args.seed)
    network = build_model(args.model, args.num_classes, **dict(args.option))
    model = with_normalization(network, IMAGENET_MEAN, IMAGENET_STD).eval().requires_grad_(False)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return compile_blocks(model, args.compile_backend) if args.compile else model


# ---------------------------------------------------------------------------------- measuring
def time_calls(bench: Bench, calls: Calls, desc: str) -> dict[str, list[float]]:
    """Seconds of ``--repeats`` runs of each call, interleaved, after ``--warmup`` runs of each."""
    args = bench.args
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    with bench.progress(len(calls) * (args.warmup + args.repeats), desc) as bar:
        for call in calls.values():
            for _ in range(args.warmup):
                with bench.context():
                    call()
                bar.update()
        for _ in range(args.repeats):
            for name, call in calls.items():
                bench.sync()
                start = time.perf_counter()
                with bench.context():
                    call()
                bench.sync()
                seconds[name].append(time.perf_counter() - start)
                bar.update()
    return seconds


def timing(runs: list[float], images: int) -> dict[str, object]:
    """Median, the runs, and per-image figures of one contender."""
    median = statistics.median(runs)
    return {
        "median_s": median,
        "runs_s": runs,
        "images": images,
        "s_per_image": median / images,
        "images_per_s": images / median,
    }


def ratio(contender: float | None, baseline: float | None) -> float | None:
    """``contender / baseline``, or None when either is missing."""
    if contender is None or baseline is None or baseline == 0:
        return None
    return contender / baseline


def compare(
    results: dict, contender: str, baseline: str, goals: Sequence[tuple[str, str, float]] = ()
) -> dict:
    """Ratios of two contenders' medians (and peak memories); whether ``goals`` are met."""
    one, other = results[contender], results[baseline]
    row = {
        "contender": contender,
        "baseline": baseline,
        "time_ratio": one["median_s"] / other["median_s"],
        "speedup": other["median_s"] / one["median_s"],
        "memory_ratio": ratio(
            one.get("peak_memory", {}).get("mib"), other.get("peak_memory", {}).get("mib")
        ),
    }
    checks = [(row[metric], op, value) for metric, op, value in goals]
    row["goal"] = ", ".join(f"{metric} {op} {value:g}" for metric, op, value in goals) or None
    if not checks or any(got is None for got, _, _ in checks):
        row["goal_met"] = None
    else:
        row["goal_met"] = all(got <= v if op == "<=" else got >= v for got, op, v in checks)
    return row


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` reports an allocation failure (CUDA or CPU)."""
    text = str(error).lower()
    return (
        isinstance(error, torch.OutOfMemoryError)
        or "out of memory" in text
        or ("can't allocate memory" in text)
    )


# ---------------------------------------------------------------------------------- reporting
def _num(value: float | None, digits: int = 3) -> str:
    return (
        "n/a" if value is None else f"{value:.{digits}g}" if value < 1e-3 else f"{value:.{digits}f}"
    )


def _mib(record: dict | None) -> str:
    if not record:
        return ""
    return "n/a" if record.get("mib") is None else f"{record['mib']:.1f}"


def contenders_table(section: dict) -> list[str]:
    """Markdown rows of a section's contenders."""
    lines = [
        "| contender | median s | s / image | images / s | peak MiB |",
        "|---|---|---|---|---|",
    ]
    for name, result in section["contenders"].items():
        lines.append(
            f"| {name} | {_num(result['median_s'])} | {_num(result['s_per_image'])} | "
            f"{_num(result['images_per_s'], 2)} | {_mib(result.get('peak_memory'))} |"
        )
    return lines


def comparisons_table(section: dict) -> list[str]:
    """Markdown rows of a section's comparisons."""
    lines = [
        "| contender / baseline | time ratio | speedup | memory ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    met = {True: "yes", False: "**no**", None: "n/a"}
    for row in section["comparisons"]:
        lines.append(
            f"| {row['contender']} / {row['baseline']} | {_num(row['time_ratio'])} | "
            f"{_num(row['speedup'], 2)} | {_num(row['memory_ratio'])} | {row['goal'] or ''} | "
            f"{met[row['goal_met']] if row['goal'] else ''} |"
        )
    return lines


def scaling_table(section: dict) -> list[str]:
    """Markdown rows of the scaling section."""
    lines = [
        "| by | size | batch | MP | forward s | forward s/MP | forward MiB | step s | step s/MP | "
        "step MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in section["rows"]:
        head = f"| {row['by']} | {row['size'][0]}x{row['size'][1]} | {row['batch']} | {row['megapixels']:.3f} |"
        if "skipped" in row:
            lines.append(f"{head} skipped: {row['skipped']} | | | | | |")
            continue
        cells = [
            f" {_num(row[n]['median_s'])} | {_num(row[n]['s_per_megapixel'])} | {_mib(row[n]['peak_memory'])} |"
            for n in ("forward", "step")
        ]
        lines.append(head + "".join(cells))
    return lines


def markdown(results: dict) -> str:
    """All sections as Markdown tables, headed by the command and environment."""
    env = results["environment"]
    lines = [
        "# regionattack performance",
        "",
        f"`{env['command']}`",
        "",
        f"{env['date']}, torch {env['torch']}, {env['device']} ({env['processor']}), "
        f"{env['threads']} threads, commit {env['commit']}",
    ]
    for name, section in results["sections"].items():
        lines += ["", f"## {name}", "", *section_markdown(name, section)]
    return "\n".join(lines) + "\n"


def section_markdown(name: str, section: dict) -> list[str]:
    """One section's tables (and its equality check) as Markdown lines."""
    if name == "scaling":
        return scaling_table(section)
    lines = contenders_table(section) + [""] + comparisons_table(section)
    if name == "ranking":
        lines += ["", f"flip scores match the official loop: {section['flip_scores_match']}"]
    if name == "sweep":
        lines += ["", f"predictions equal: {section['predictions_equal']}"]
    return lines
