"""Summarise vulnerability maps of one model made with several seeds (``regionattack map``).

Reads ``map.json`` from each folder (one per attack seed, same model, images and settings but the
seed), and prints a Markdown table per cell (mean ± std over the maps of each measure), the cells
ranked by mean mIoU drop, and, per map, Spearman's rank correlation over the cells between the
input-attack view (``miou_drop``, ``changed_inside``) and the channel view (``channel_drop``)::

    python -m benchmarks.map_summary benchmarks/results/maps/bench-s0 benchmarks/results/maps/bench-s1
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from regionattack.maps import MEASURES
from regionattack.metrics import spearman_correlation


def load_map(folder: Path) -> dict:
    """The settings and per-cell rows of ``folder/map.json`` (every cell must be finished).

    Raises:
        ValueError: If a cell of the grid is missing (the map was interrupted).
    """
    record = json.loads((Path(folder) / "map.json").read_text())
    fingerprint = record["fingerprint"]
    rows, cols = fingerprint["grid"]
    units = record["units"]
    missing = [i for i in range(rows * cols) if f"cell/{i}" not in units]
    if missing:
        raise ValueError(f"{folder}: cells {missing} are not finished; rerun regionattack map")
    cells = [dict(units[f"cell/{i}"]) for i in range(rows * cols)]
    for cell, drop in zip(cells, units.get("channels") or [], strict=False):
        cell["channel_drop"] = drop  # maps since 2026-12-05 keep the channel view in one unit
    return {"fingerprint": fingerprint, "rows": cells}


def summarize(maps: list[dict]) -> dict:
    """Per-cell mean and std of each measure, the ranking of cells and the rank correlations.

    Example:
        >>> one = {"fingerprint": {"grid": [1, 2], "seed": 0},
        ...        "rows": [{"miou_drop": 0.1, "channel_drop": 0.3},
        ...                 {"miou_drop": 0.2, "channel_drop": 0.4}]}
        >>> out = summarize([one])
        >>> out["weakest"], out["correlations"][0]["miou_drop~channel_drop"]
        ([1, 0], 1.0)
    """
    settings = [{k: v for k, v in m["fingerprint"].items() if k != "seed"} for m in maps]
    if any(s != settings[0] for s in settings):
        raise ValueError("the maps differ in more than the seed (model, images or settings)")
    cells = len(maps[0]["rows"])
    measures = [name for name in MEASURES if maps[0]["rows"][0].get(name) is not None]
    table = []
    for index in range(cells):
        row = {}
        for name in measures:
            values = [m["rows"][index][name] for m in maps]
            row[name] = statistics.fmean(values)
            row[f"{name}_std"] = statistics.pstdev(values)
        table.append(row)
    weakest = sorted(range(cells), key=lambda i: -table[i]["miou_drop"])
    correlations = []
    if "channel_drop" in measures:
        for m in maps:
            channel = torch.tensor([row["channel_drop"] for row in m["rows"]])
            correlations.append(
                {
                    "seed": m["fingerprint"].get("seed"),
                    **{
                        f"{name}~channel_drop": spearman_correlation(
                            torch.tensor([row[name] for row in m["rows"]]), channel
                        )
                        for name in ("miou_drop", "changed_inside")
                    },
                }
            )
    return {"measures": measures, "cells": table, "weakest": weakest, "correlations": correlations}


def markdown(summary: dict, grid: list[int]) -> str:
    """The per-cell table and the correlations as Markdown."""
    measures = summary["measures"]
    lines = [
        "| cell | " + " | ".join(name.replace("_", " ") for name in measures) + " |",
        "|---" * (len(measures) + 1) + "|",
    ]
    for index, row in enumerate(summary["cells"]):
        values = [f"{row[name]:.3f} ± {row[name + '_std']:.3f}" for name in measures]
        lines.append(f"| {divmod(index, grid[1])} | " + " | ".join(values) + " |")
    lines += ["", f"cells by mean mIoU drop, weakest first: {summary['weakest']}"]
    for row in summary["correlations"]:
        pairs = ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k != "seed")
        lines.append(f"seed {row['seed']}: Spearman over cells: {pairs}")
    return "\n".join(lines)


def main() -> None:
    """Print the summary of the maps in the folders given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="output folders of regionattack map")
    args = parser.parse_args()
    maps = [load_map(Path(folder)) for folder in args.folders]
    print(markdown(summarize(maps), maps[0]["fingerprint"]["grid"]))


if __name__ == "__main__":
    main()
