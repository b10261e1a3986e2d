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

Peak memory is the most memory a call holds above what was held just before it: on CUDA from
``torch.cuda.max_memory_allocated``, on the CPU from the kernel's counters in a fresh process per
contender (a probe server, this script with a hidden flag, forks one child per contender, which
runs this script with ``--memory-probe SECTION:NAME``; see ``benchmarks/perf_memory.py``).

``--autocast bf16`` runs every contender under ``torch.autocast(device, torch.bfloat16)``;
``--compile`` compiles the ``forward`` of the model's blocks (for smp models: encoder, decoder, head)
with ``torch.compile`` (``--compile-backend``, default inductor), so that the hooks the library puts
on the latent layer still run, eagerly, around them. Neither is on by default.

Results go to ``--out FILE.json`` (with the environment of
:func:`regionattack.bench.write_record`: versions, device, threads, commit, command, date) and the
tables to ``FILE.md``; both are written atomically. The script is split by job: the harness
(:class:`Bench`, timing, ratios, Markdown tables) in ``perf_harness.py``, the memory prober in
``perf_memory.py``, the contenders and section runners in ``perf_sections.py``; this file parses
the arguments and runs the chosen sections. Example (docs/performance.md)::

    python benchmarks/perf.py --option encoder_output_stride=16 --option decoder_channels=64 \\
        --option "decoder_atrous_rates=(2, 4, 6)" --out benchmarks/results/perf.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from regionattack.bench.environment import environment, write_record, write_text
from regionattack.cli import add_option_argument, parse_size

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file (python benchmarks/perf.py): let it import its siblings
    sys.path.insert(0, str(REPO))
from benchmarks.perf_harness import Bench, build_network, markdown, recompile_limit  # noqa: E402
from benchmarks.perf_memory import probe_server, serve_probes  # noqa: E402
from benchmarks.perf_sections import ALPHA, EPS, RUNNERS, SECTIONS, run_probe  # noqa: E402


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


# ---------------------------------------------------------------------------------- running
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


def run_sections(bench: Bench) -> int:
    """Run the chosen sections; print the tables; write JSON and Markdown."""
    args = bench.args
    record = {
        "settings": settings(args),
        "sections": {name: RUNNERS[name](bench) for name in args.sections},
    }
    command = shlex.join(["python", "benchmarks/perf.py", *bench.argv])
    if args.out:
        out = write_record(args.out, record, device=bench.device, command=command)
        results = json.loads(out.read_text())  # the tables say what the file says
    else:
        results = {**record, "environment": environment(bench.device, command=command)}
    report = markdown(results)
    print(report)
    if args.out:
        write_text(out.with_suffix(".md") if out.suffix == ".json" else Path(f"{out}.md"), report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections; print the tables; write JSON and Markdown; return the exit status."""
    argv = tuple(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.memory_probe_server:
        return serve_probes(main)
    with (
        probe_server(Path(__file__).resolve()) as probe,
        recompile_limit(64 if args.compile else None),
    ):
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
