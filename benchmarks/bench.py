"""``python benchmarks/bench.py ARGS`` is ``regionattack bench ARGS`` (see docs/benchmarks.md)."""

import sys

from regionattack.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
