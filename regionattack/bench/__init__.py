"""The benchmark behind ``regionattack bench``, and the defense evaluation :func:`evaluate_defense`.

The benchmark: experiments, resumable results in a locked run folder (:class:`Run`), report,
torchrun. :func:`write_record` writes a result with the record of where it was measured
(:mod:`regionattack.bench.environment`); every script in ``benchmarks/`` writes its JSON so.

Example (command line)::

    regionattack bench --dataset camvid --root DIR --split val --checkpoint FILE --out OUTDIR
"""

from regionattack.bench.defense import evaluate_defense
from regionattack.bench.defense_report import DefenseReport
from regionattack.bench.environment import write_record
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
    "write_record",
]
