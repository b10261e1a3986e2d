"""What regionattack costs next to its baselines, measured side by side in one run (issue 5).

Every section times its contenders on the same model and the same seeded batch of random images
(labels are the model's clean predictions), runs each contender ``--warmup`` times, then
``--repeats`` times in turn (A, B, A, B, ...) and reports the medians and their ratios:

* ``attack``: ``RegionAttack`` (objective "segmentation", and "both", which ranks channels on the
  batch) against ``torchattacks.PGD`` with the same eps, alpha and steps, and the floor of any such
  attack: one clean forward plus ``steps`` x (forward, cross-entropy, backward to the input).
  Time and peak-memory ratios to PGD (goal: <= 1.10 for both).
* ``ranking``: ``rank_channels(method="flip")`` against the paper's loop re-created here (one image
  at a time: numpy HWC image on the host -> tensor -> latent -> GAP, the mirror image flipped with
  numpy on the host likewise, ``|difference|`` accumulated per channel, under ``torch.no_grad``),
  also with the model and images in channels_last; ``rank_channels(method="gradient")`` against
  one forward + backward to the input on the same batch (goal: <= 1.2x).
* ``sweep``: ``ablated_predictions`` with 42 selections (6 k values x (flip and gradient top-k +
  5 seeded random draws)) against a full forward per selection under ``ablate_channels``; the
  predictions must be equal (goal: >= 3x faster).
* ``map``: ``vulnerability_map`` with a 3 x 3 grid on the batch (with the channel drop, and
  without) against one ``RegionAttack`` on the same batch with the same eps and steps (goal: the
  map with channels <= 9.5x: nine cells' attacks plus the evaluation and the channel view); and
  the map as ``regionattack map`` makes it (a resumable unit per cell in a fresh run folder,
  :meth:`~regionattack.maps.Mapper.by_units`) against ``vulnerability_map`` (goal: <= 1.1x).
* ``scaling``: one attack step (forward + cross-entropy + backward to the input) and the forward
  alone against image size (batch 1) and batch size (at ``--size``): seconds, seconds per
  megapixel, peak memory. Configurations that run out of memory are reported as skipped.

Peak memory is the most memory a call holds above what was held just before it. On CUDA:
``torch.cuda.reset_peak_memory_stats``, then ``max_memory_allocated`` minus the
``memory_allocated`` before the call. On the CPU each contender is measured in a fresh process: a
probe server (this script with a hidden flag, started once with ``MALLOC_MMAP_THRESHOLD_=65536``
and ``MALLOC_TRIM_THRESHOLD_=0``, so that freed large buffers go back to the OS and the resident set
follows live memory) imports the libraries once and forks one child per contender, which runs this
script with ``--memory-probe SECTION:NAME``: it builds the model and the batch, calls the contender
once to warm up, writes ``5`` to ``/proc/self/clear_refs`` (resetting VmHWM), reads VmRSS, calls the
contender once more and reports VmHWM minus that VmRSS (the kernel's counters are exact to a few
hundred KiB). Where ``/proc/self/clear_refs`` cannot be written, memory is null with the reason.

``--autocast bf16`` runs every contender under ``torch.autocast(device, torch.bfloat16)``;
``--compile`` compiles the ``forward`` of the model's blocks (for smp models: encoder, decoder, head)
with ``torch.compile`` (``--compile-backend``, default inductor), so that the hooks the library puts
on the latent layer still run, eagerly, around them. Neither is on by default.

Results go to ``--out FILE.json`` (with the environment: versions, device, threads, commit,
command, date) and the tables to ``FILE.md``; both are written atomically. Example (docs/performance.md)::

    python benchmarks/perf.py --option encoder_output_stride=16 --option decoder_channels=64 \\
        --option "decoder_atrous_rates=(2, 4, 6)" --out benchmarks/results/perf.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn
from tqdm import tqdm

from regionattack._files import write_atomic
from regionattack.ablation import ablate_channels, ablated_predictions
from regionattack.attacks import RegionAttack
from regionattack.bench.environment import environment
from regionattack.bench.run import Run
from regionattack.bench.sweep import ablation_ks, channel_selections
from regionattack.cli import add_option_argument, parse_size
from regionattack.latent import find_layer, latent_of, model_logits, predict, predicted_classes
from regionattack.maps import Mapper, vulnerability_map
from regionattack.models import build_model
from regionattack.normalization import IMAGENET_MEAN, IMAGENET_STD, unwrap, with_normalization
from regionattack.ranking import rank_channels

SECTIONS = ("attack", "ranking", "sweep", "map", "scaling")
EPS, ALPHA = 8 / 255, 2 / 255
K_FRACTIONS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4)
RANDOM_DRAWS = 5
PROBE_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
REPO = Path(__file__).resolve().parents[1]

Calls = dict[str, Callable[[], object]]


# ---------------------------------------------------------------------------------- arguments
def parse_sections(text: str) -> tuple[str, ...]:
    """``"attack,sweep"`` -> ``("attack", "sweep")``, each one of :data:`SECTIONS`."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(map(repr, unknown)) or repr(text)}; "
            f"choose a comma-separated subset of {','.join(SECTIONS)}"
        )
    return tuple(dict.fromkeys(names))


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"256x512,512x1024"`` -> ``[(256, 512), (512, 1024)]``."""
    return [parse_size(part) for part in text.split(",") if part.strip()]


def parse_counts(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``, all positive."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 1,2,4,8; got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, e.g. 1,2,4,8; got {text!r}")
    return counts


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``benchmarks/perf.py``."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/perf.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", default="smp:DeepLabV3:resnet18", help="see build_model")
    add_option_argument(parser)
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--size", type=parse_size, default=(176, 240), help="HEIGHTxWIDTH")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="attack steps")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per contender")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per contender first")
    parser.add_argument(
        "--sections",
        type=parse_sections,
        default=SECTIONS,
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--scaling-sizes", type=parse_sizes, default=parse_sizes("256x512,512x1024,1024x2048")
    )
    parser.add_argument("--scaling-batches", type=parse_counts, default=parse_counts("1,2,4,8"))
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and images")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--autocast", choices=("bf16",), default=None, help="run every contender under autocast"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's blocks")
    parser.add_argument(
        "--compile-backend", default="inductor", help="torch.compile backend (default: inductor)"
    )
    parser.add_argument("--out", default=None, help="JSON file to write (tables go to FILE.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory-probe-server", action="store_true", help=argparse.SUPPRESS)
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Reject settings argparse cannot check alone (ValueError)."""
    for name in ("num_classes", "batch_size", "steps", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(
                f"--{name.replace('_', '-')} must be positive; got {getattr(args, name)}"
            )
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0; got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be positive; got {args.threads}")
    if args.compile and args.warmup < 1:
        raise ValueError("--compile needs --warmup >= 1 (the first calls compile)")


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


def memory(bench: Bench, section: str, name: str, calls: Calls, batch: int, size) -> dict:
    """Peak memory of ``calls[name]`` ({"mib", "reason", "method"}); see the module docstring.

    On the CPU the probe rebuilds the call from ``section``, ``name``, ``batch`` and ``size``.
    """
    if bench.device.type == "cuda":
        return cuda_peak(bench, calls[name])
    if bench.probe is None:
        return {"mib": None, "reason": "no probe server", "method": None}
    where = ["--size", f"{size[0]}x{size[1]}", "--batch-size", str(batch)]
    return bench.probe([*bench.argv, *where, "--memory-probe", f"{section}:{name}"])


@contextlib.contextmanager
def probe_server() -> Iterator[Callable[[list[str]], dict]]:
    """Yield ``measure(argv)``: the peak memory a fresh process running ``main(argv)`` reports.

    The server, started on the first request, is this script with ``--memory-probe-server`` and
    the allocator settings of :data:`PROBE_ENV`; it imports the libraries once and forks a fresh
    child per request, so that a probe costs the model's construction, not the imports.
    """
    process: subprocess.Popen | None = None

    def measure(argv: list[str]) -> dict:
        nonlocal process
        if process is None:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--memory-probe-server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, **PROBE_ENV},
            )
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(argv) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except OSError as error:  # the server died (e.g. killed for memory)
            line, reason = "", f"the probe server failed: {error}"
        else:
            reason = f"the probe server exited with {process.poll()}"
        return json.loads(line) if line else {"mib": None, "reason": reason, "method": None}

    try:
        yield measure
    finally:
        if process is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # type: ignore[union-attr]
            process.wait()


def serve_probes() -> int:
    """``--memory-probe-server``: for each JSON argv on stdin, fork, run it, relay its JSON line."""
    with contextlib.suppress(ImportError):  # imported once here rather than in every child
        import segmentation_models_pytorch  # noqa: F401
    for line in sys.stdin:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns
            os.close(read_end)
            _run_probe_child(json.loads(line), write_end)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            answer = pipe.read().strip().splitlines()
        _, status = os.waitpid(pid, 0)
        if not answer:
            reason = f"the probe failed (wait status {status}); see its error above"
            answer = [json.dumps({"mib": None, "reason": reason, "method": None})]
        print(answer[-1], flush=True)
    return 0


def _run_probe_child(argv: list[str], fd: int) -> None:
    code = 1
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # only the pipe carries the answer
        with os.fdopen(fd, "w") as answer, contextlib.redirect_stdout(answer):
            code = main(argv)
    except BaseException:  # noqa: BLE001 - reported on stderr; the server answers for it
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def cuda_peak(bench: Bench, call: Callable[[], object]) -> dict:
    """Peak CUDA memory allocated by one call above what was allocated before it."""
    bench.sync()
    torch.cuda.reset_peak_memory_stats(bench.device)
    before = torch.cuda.memory_allocated(bench.device)
    with bench.context():
        result = call()
    bench.sync()
    peak = torch.cuda.max_memory_allocated(bench.device) - before
    del result
    return {"mib": peak / 2**20, "reason": None, "method": "cuda max_memory_allocated"}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def probe(bench: Bench, call: Callable[[], object]) -> dict:
    """In a fresh process: VmHWM - VmRSS around one call, after one warm-up call."""
    method = "VmHWM - VmRSS in a fresh process"
    with bench.context():
        call()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
    except OSError as error:
        reason = f"cannot reset the peak resident set via /proc/self/clear_refs: {error}"
        return {"mib": None, "reason": reason, "method": method}
    with bench.context():
        result = call()
    peak = _status_kib("VmHWM") - before
    del result
    return {"mib": peak / 1024, "reason": None, "method": method}


def run_probe(bench: Bench) -> int:
    """``--memory-probe SECTION:NAME``: print the contender's peak memory as JSON."""
    section, _, name = bench.args.memory_probe.partition(":")
    builders = {"attack": attack_calls, "map": map_calls, "scaling": scaling_calls}
    if section not in builders:
        print(f"perf: error: no memory probe for section {section!r}", file=sys.stderr)
        return 2
    images, labels = bench.images(bench.args.batch_size, bench.args.size)
    calls = builders[section](bench, images, labels)
    if name not in calls:
        print(f"perf: error: no contender {name!r} in {section}", file=sys.stderr)
        return 2
    print(json.dumps(probe(bench, calls[name])))
    return 0


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


# ---------------------------------------------------------------------------------- reporting
def run_environment(bench: Bench) -> dict:
    """Versions, device, threads, commit, command and date of this run."""
    command = shlex.join(["python", "benchmarks/perf.py", *bench.argv])
    return environment(bench.device, command=command)


def settings(args: argparse.Namespace) -> dict:
    """The measured configuration."""
    return {
        "model": args.model,
        "options": dict(args.option),
        "num_classes": args.num_classes,
        "size": list(args.size),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "eps": EPS,
        "alpha": ALPHA,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "seed": args.seed,
        "autocast": args.autocast,
        "compile": args.compile_backend if args.compile else None,
        "sections": list(args.sections),
    }


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


def run_sections(bench: Bench) -> int:
    """Run the chosen sections; print the tables; write JSON and Markdown."""
    args = bench.args
    results = {"environment": run_environment(bench), "settings": settings(args), "sections": {}}
    for name in args.sections:
        results["sections"][name] = RUNNERS[name](bench)
    report = markdown(results)
    print(report)
    if args.out:
        out = Path(args.out)
        write_atomic(out, json.dumps(results, indent=1) + "\n")
        write_atomic(out.with_suffix(".md") if out.suffix == ".json" else Path(f"{out}.md"), report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections; print the tables; write JSON and Markdown; return the exit status."""
    argv = tuple(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.memory_probe_server:
        return serve_probes()
    with probe_server() as probe, recompile_limit(64 if args.compile else None):
        try:
            check_args(args)
            if args.threads is not None:
                torch.set_num_threads(args.threads)
            device = torch.device(args.device)
            bench = Bench(args, argv, device, build_network(args, device), probe)
        except (ValueError, RuntimeError) as error:
            print(f"perf: error: {error}", file=sys.stderr)
            return 2
        if args.memory_probe is not None:
            return run_probe(bench)
        return run_sections(bench)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
