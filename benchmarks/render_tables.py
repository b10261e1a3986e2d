"""Render the results tables of README.md and docs/ from the committed JSON: none is typed by hand.

A page marks each generated table with two HTML comments (invisible on GitHub and in Sphinx); the
first names a renderer, its JSON file(s) and options::

    <!-- table: region-strength benchmarks/results/region_strength-bench.json eps=8/255 steps=10 -->
    | attack | eps | ... (generated) |
    <!-- end table -->

Rewrite every marked table, or only check that the pages match their JSON (exit status 1 and
the pages that differ; tests/benchmarks/test_render_tables.py runs the check)::

    python -m benchmarks.render_tables
    python -m benchmarks.render_tables --check
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    claims_spread,
    hiding,
    map_summary,
    peer_minimal_eps,
    perf_harness,
    pooling_path,
    region_attack_weights,
    region_strength,
)
from regionattack.bench import report
from regionattack.bench.defense_report import DefenseReport
from regionattack.cli import parse_radii
from regionattack.maps import VulnerabilityMap, map_cells

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^([ \t]*)<!-- table: (.+?) -->\n.*?^[ \t]*<!-- end table -->", re.S | re.M)
START = re.compile(r"^[ \t]*<!-- table: ")
END = re.compile(r"^[ \t]*<!-- end table -->")


def _json(path: str) -> dict:
    try:
        record = json.loads((ROOT / path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable JSON record ({error})") from error
    if not isinstance(record, dict) or not record:
        raise ValueError(f"{path}: expected a JSON object with results; got {record!r:.40}")
    return record


def _list(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def _from_json(table: Callable[[dict], str]) -> Callable[[str], str]:
    """A renderer of one JSON file by a benchmark script's own ``table(record)``."""
    return lambda path: table(_json(path))


def bench_table(path: str, section: str) -> str:
    """A table of a ``results.json`` of ``regionattack bench`` or ``demo`` (the report's tables)."""
    results = _json(path)
    if section == "clean":
        return report.clean_table(results["clean"])
    if section == "overall":
        return report.overall_table(report.summarize_ablation(results["ablation"]))
    if section == "regions":
        return report.region_table(results["ablation"])
    if section == "attacks":
        return report.attack_table(results["attacks"])
    if section == "fidelity":
        return report.fidelity_table(results["fidelity"])
    raise ValueError(f"unknown bench section {section!r}")


def region_strength_table(path: str, eps: str = "", steps: str = "", variants: str = "") -> str:
    """:func:`benchmarks.region_strength.table`, restricted to the radii, steps and variants given."""
    record = _json(path)
    settings = record["settings"]
    chosen = {
        "eps": parse_radii(eps) if eps else settings["eps"],
        "steps": [int(s) for s in _list(steps)] or settings["steps"],
        "variants": _list(variants) or settings["variants"],
    }
    return region_strength.table({"settings": chosen, "rows": record["rows"]})


def hiding_table(
    path: str, eps: str = "", steps: str = "", variants: str = "", classes: str = ""
) -> str:
    """:func:`benchmarks.hiding.table`, restricted to the radii, steps, variants and class sets."""
    record = _json(path)
    settings = record["settings"]
    chosen = {
        "eps": parse_radii(eps) if eps else settings["eps"],
        "steps": [int(s) for s in _list(steps)] or settings["steps"],
        "variants": _list(variants) or settings["variants"],
        "classes": _list(classes) or settings["classes"],
    }
    return hiding.table({"settings": chosen, "rows": record["rows"]}).strip()


def trade_off_table(eps: str, steps: str, groups: str, **models: str) -> str:
    """Drop inside / changed outside of groups of variants side by side, per model and radius.

    Args:
        eps: Radii, e.g. ``"2/255,8/255"``.
        steps: Step count of the rows.
        groups: ``"HEADER=variant,variant|HEADER=..."``: one column per group, its variants'
            "drop inside / changed outside" joined by ``;``.
        models: ``label=path`` of each model's region_strength JSON.
    """
    columns = [group.split("=", 1) for group in groups.split("|")]
    lines = [
        "| model | eps | " + " | ".join(header for header, _ in columns) + " | noise |",
        "|---" * (len(columns) + 3) + "|",
    ]
    for label, path in models.items():
        rows = _json(path)["rows"]
        for radius in parse_radii(eps):
            cells = []
            for _, variants in columns:
                summaries = [
                    region_strength.summarize(rows, v, radius, int(steps)) for v in _list(variants)
                ]
                cells.append("; ".join(
                    f"{s['drop_inside']:.3f} / {100 * s['changed_outside']:.1f}%" for s in summaries
                ))  # fmt: skip
            noise = region_strength.summarize(rows, "UniformNoise", radius, int(steps))
            lines.append(
                f"| {label} | {region_strength.radius_label(radius)}/255 | {' | '.join(cells)} | "
                f"{100 * noise['changed_outside']:.1f}% |"
            )
    return "\n".join(lines)


def maps_table(*folders: str) -> str:
    """:func:`benchmarks.map_summary.markdown` of the maps in ``folders`` (one per seed)."""
    maps = [map_summary.load_map(ROOT / folder) for folder in folders]
    return map_summary.markdown(map_summary.summarize(maps), maps[0]["fingerprint"]["grid"])


def demo_map_table(path: str) -> str:
    """The table of the map a demo stored in ``map.json``."""
    record = _json(path)
    grid = tuple(record["fingerprint"]["grid"])
    cells, shape = map_cells(grid, grid)  # one pixel per cell: the table needs only their number
    vmap = VulnerabilityMap.from_rows(cells, shape, record["units"]["map"]["rows"], {})
    return vmap.table()


def claims_table(path: str, data: str) -> str:
    """The runs of one data set in ``claims_spread.json`` and the smallest value of each column."""
    return claims_spread.table(_json(path)["rows"], data)


def defenses_table(path: str) -> str:
    """:meth:`DefenseReport.table` of a ``benchmarks/defenses.py`` run's ``results.json``."""
    return DefenseReport.from_results(_json(path)).table()


def perf_table(path: str, section: str) -> str:
    """One section of a ``benchmarks/perf.py`` JSON, as perf.py writes it in its ``.md``."""
    return "\n".join(perf_harness.section_markdown(section, _json(path)["sections"][section]))


RENDERERS: dict[str, Callable[..., str]] = {
    "bench": bench_table,
    "region-strength": region_strength_table,
    "hiding": hiding_table,
    "maps": maps_table,
    "demo-map": demo_map_table,
    "claims": claims_table,
    "peer-minimal-eps": _from_json(peer_minimal_eps.table),
    "defenses": defenses_table,
    "perf": perf_table,
    "trade-off": trade_off_table,
    "pooling-path": _from_json(pooling_path.table),
    "region-attack-weights": _from_json(region_attack_weights.table),
}


def render(spec: str) -> str:
    """The table a marker's ``spec`` (``renderer arg... key=value...``) describes.

    Raises:
        ValueError: For an unknown renderer.
    """
    name, *words = shlex.split(spec)
    if name not in RENDERERS:
        raise ValueError(f"unknown table renderer {name!r}; known: {sorted(RENDERERS)}")
    args = [w for w in words if "=" not in w]
    options = dict(w.split("=", 1) for w in words if "=" in w)
    return RENDERERS[name](*args, **options)


def check_markers(text: str, page: str = "page") -> None:
    """Refuse a page whose table markers do not pair up (each start closed before the next).

    A missing ``<!-- end table -->`` would otherwise let a table run to the next block's end
    marker and replace the prose in between.

    Raises:
        ValueError: Naming the page and the line of the unpaired marker.
    """
    opened = None
    for number, line in enumerate(text.splitlines(), 1):
        if START.match(line):
            if opened is not None:
                raise ValueError(f"{page}:{opened}: table marker without <!-- end table -->")
            opened = number
        elif END.match(line):
            if opened is None:
                raise ValueError(f"{page}:{number}: <!-- end table --> without a table marker")
            opened = None
    if opened is not None:
        raise ValueError(f"{page}:{opened}: table marker without <!-- end table -->")


def render_page(text: str, page: str = "page") -> str:
    """``text`` with every marked table rendered again (indented as its markers, in a list).

    Raises:
        ValueError: If the markers do not pair up (:func:`check_markers`) or a table's JSON
            cannot be read.
    """
    check_markers(text, page)

    def rendered(match: re.Match) -> str:
        indent, spec = match[1], match[2]
        table = "\n".join(indent + line for line in render(spec).splitlines())
        return f"{indent}<!-- table: {spec} -->\n{table}\n{indent}<!-- end table -->"

    return BLOCK.sub(rendered, text)


def pages() -> list[Path]:
    """README.md and every Markdown page of docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    """Rewrite the marked tables (or, with ``--check``, report the pages that differ)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 on a difference"
    )
    args = parser.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text()
        try:
            rendered = render_page(text, str(page.relative_to(ROOT)))
        except ValueError as error:
            print(f"render_tables: error: {error}", file=sys.stderr)
            return 2
        if rendered != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(rendered)
    if stale:
        verb = "differ from their JSON" if args.check else "rewritten"
        print(f"{verb}: {', '.join(map(str, stale))}", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
