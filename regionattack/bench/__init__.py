"""The benchmark behind ``regionattack bench``: experiments, resumable results, report, torchrun.

Example (command line)::

    regionattack bench --dataset camvid --root DIR --split val --checkpoint FILE --out OUTDIR
"""

from regionattack.bench.runner import ATTACKS, BenchConfig, run_benchmark

__all__ = ["ATTACKS", "BenchConfig", "run_benchmark"]
