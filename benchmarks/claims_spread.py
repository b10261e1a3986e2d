"""How much the claims of tests/test_claims.py vary between training seeds and CPU kernels.

Reads the ``results.json`` of several ``regionattack demo`` runs (one per training seed, or per
``ATEN_CPU_CAPABILITY``) and prints, per run, the quantities the claims tests assert on, with the
smallest value over the runs: that is the margin a threshold must stay below. Example (README,
"How robust the claims are")::

    python -m benchmarks.claims_spread --run synthetic/seed0=demo-synthetic \\
        --run synthetic/seed1=runs/syn-s1 --json benchmarks/results/claims_spread.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from regionattack.bench import write_record
from regionattack.bench.report import format_table, summarize_ablation


def claim_values(results: dict) -> dict[str, float]:
    """The quantities the claims tests compare, at k = 20% of the channels."""
    clean = results["clean"]
    k = max(row["k"] for row in results["ablation"])
    summary = {
        (r["ranking"], r["region"], r["k"]): r for r in summarize_ablation(results["ablation"])
    }

    def drop(ranking: str, region: str, part: str = "") -> float:
        return clean[f"miou{part}"] - summary[(ranking, region, k)][f"miou{part}"]

    randoms = [
        clean["miou"] - r["miou"]
        for r in results["ablation"]
        if r["ranking"] == "random" and r["k"] == k
    ]
    attack = {row["attack"]: row for row in results["attacks"]}
    region_attack, pgd = attack["RegionAttack[segmentation]"], attack["PGD"]
    return {
        "clean_miou": clean["miou"],
        "gradient_drop": drop("gradient", "overall"),
        "flip_drop": drop("flip", "overall"),
        "random_drop_max": max(randoms),
        "random_drop_mean": sum(randoms) / len(randoms),
        "gradient_over_random_mean": drop("gradient", "overall") - sum(randoms) / len(randoms),
        "gradient_over_random": drop("gradient", "overall") - max(randoms),
        "gradient_over_flip": drop("gradient", "overall") - drop("flip", "overall"),
        "left_ranked_left_drop": drop("gradient", "left", "_left"),
        "left_ranked_right_drop": drop("gradient", "left", "_right"),
        "left_over_right": drop("gradient", "left", "_left") - drop("gradient", "left", "_right"),
        "attack_drop_inside": region_attack["drop_inside"],
        "attack_drop_outside": region_attack["drop_outside"],
        "attack_changed_outside": region_attack["changed_outside"],
        "pgd_changed_outside": pgd["changed_outside"],
    }


COLUMNS = [
    ("run", "run", ""),
    ("clean_miou", "clean mIoU", ".3f"),
    ("gradient_drop", "gradient top-20% drop", ".4f"),
    ("flip_drop", "flip top-20% drop", ".4f"),
    ("random_drop_mean", "mean random drop", ".4f"),
    ("random_drop_max", "largest random drop", ".4f"),
    ("gradient_over_random_mean", "gradient - mean random", ".4f"),
    ("gradient_over_random", "gradient - largest random", ".4f"),
    ("gradient_over_flip", "gradient - flip", ".4f"),
    ("left_ranked_left_drop", "left-ranked: left", ".4f"),
    ("left_ranked_right_drop", "left-ranked: right", ".4f"),
    ("left_over_right", "left - right", ".4f"),
    ("attack_drop_inside", "RegionAttack in", ".3f"),
    ("attack_drop_outside", "RegionAttack out", ".3f"),
    ("attack_changed_outside", "changed outside", ".3f"),
    ("pgd_changed_outside", "PGD changed outside", ".3f"),
]


def table(rows: list[dict], data: str) -> str:
    """A Markdown table of the runs of ``data`` (runs named DATA/VARIANT) and each column's minimum."""
    group = [row for row in rows if row["run"].split("/")[0] == data]
    smallest = {"run": f"{data}/smallest"} | {
        key: min(row[key] for row in group) for key, _, fmt in COLUMNS if fmt
    }
    return format_table([*group, smallest], COLUMNS)


def main() -> None:
    """Print the table per data set (runs are named DATA/VARIANT) and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="DATA/VARIANT=DIR")
    parser.add_argument("--json", default="benchmarks/results/claims_spread.json")
    args = parser.parse_args()
    rows = []
    for spec in args.run:
        name, _, folder = spec.partition("=")
        results = json.loads((Path(folder) / "results.json").read_text())
        rows.append({"run": name, **claim_values(results)})
    for data in sorted({row["run"].split("/")[0] for row in rows}):
        print(f"\n{data}\n" + table(rows, data))
    write_record(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
