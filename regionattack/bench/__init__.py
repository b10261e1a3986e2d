"""The benchmark behind ``regionattack bench``, and the defense evaluation :func:`evaluate_defense`.

The benchmark: experiments, resumable results in a locked run folder (:class:`Run`), report,
torchrun.

Example (command line)::

    regionattack bench --dataset camvid --root DIR --split val --checkpoint FILE --out OUTDIR
"""

from regionattack.bench.defense import DefenseReport, evaluate_defense
from regionattack.bench.lock import FolderInUse
from regionattack.bench.run import Run
from regionattack.bench.runner import DEFAULT_ATTACKS, BenchConfig, run_benchmark

__all__ = [
    "DEFAULT_ATTACKS",
    "BenchConfig",
    "DefenseReport",
    "FolderInUse",
    "Run",
    "evaluate_defense",
    "run_benchmark",
]
