"""The benchmark behind ``regionattack bench``, and the defense evaluation :func:`evaluate_defense`.

The benchmark: experiments, resumable results, report, torchrun.

Example (command line)::

    regionattack bench --dataset camvid --root DIR --split val --checkpoint FILE --out OUTDIR
"""

from regionattack.bench.defense import DefenseReport, evaluate_defense
from regionattack.bench.runner import ATTACKS, BenchConfig, run_benchmark

__all__ = ["ATTACKS", "BenchConfig", "DefenseReport", "evaluate_defense", "run_benchmark"]
