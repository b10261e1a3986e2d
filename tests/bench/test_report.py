"""The bench report: its tables, and report.md with its figures written from the results alone."""

import pytest
import torch

from regionattack.bench.report import (
    REGION_RANKINGS,
    attack_table,
    clean_table,
    fidelity_table,
    format_table,
    overall_table,
    region_table,
    summarize_ablation,
    write_report,
)

PNG = b"\x89PNG\r\n\x1a\n"
CLEAN = {
    "miou": 0.6,
    "miou_left": 0.62,
    "miou_right": 0.58,
    "miou_center": 0.61,
    "miou_cell": 0.5,
    "miou_not_cell": 0.63,
}


def ablation_row(ranking, region, k, miou, seed=None, inside=None, outside=None):
    return {
        "ranking": ranking,
        "region": region,
        "k": k,
        "seed": seed,
        "miou": miou,
        "miou_left": miou + 0.01,
        "miou_right": miou - 0.01,
        "miou_cell": miou,
        "miou_not_cell": miou,
        "miou_inside": inside,
        "miou_outside": outside,
    }


def attack_row(name, eps_255, inside, specificity=2.0):
    return {
        "attack": name,
        "eps": eps_255 / 255,
        "eps_255": eps_255,
        "miou": 0.4,
        "miou_inside": inside,
        "miou_outside": 0.55,
        "clean_miou_inside": 0.62,
        "clean_miou_outside": 0.58,
        "drop_inside": 0.62 - inside,
        "drop_outside": 0.03,
        "changed_outside": 0.01,
        "specificity": specificity,
        "linf": eps_255 / 255,
        "l2": 1.25,
        "seconds_per_image": 0.5,
    }


@pytest.fixture
def ablation():
    rows = [ablation_row("none", "overall", 0, 0.6)]
    for k in (1, 2):
        rows += [ablation_row("flip", "overall", k, 0.5 - 0.1 * k)]
        rows += [ablation_row("gradient", "overall", k, 0.45 - 0.1 * k)]
        rows += [ablation_row("random", "overall", k, m, seed=s) for s, m in ((0, 0.5), (1, 0.6))]
        for ranking, region in REGION_RANKINGS:
            rows += [ablation_row(ranking, region, k, 0.5, inside=0.4 - 0.1 * k, outside=0.57)]
    return rows


@pytest.fixture
def meta():
    return {
        "args": {"dataset": "camvid"},
        "images": 6,
        "model": {"latent_channels": 8},
        "environment": {
            "command": "regionattack bench --quiet",
            "commit": "abc123",
            "torch": "2.0",
            "device": "cpu",
            "threads": 2,
            "world_size": 1,
        },
    }


def figures(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".png")


def assert_png(path):
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000, path


# ---------------------------------------------------------------- tables
def test_summarize_ablation_averages_random_draws_per_ranking_region_and_k(ablation):
    summary = summarize_ablation(ablation)
    keys = [(r["ranking"], r["region"], r["k"]) for r in summary]
    assert len(keys) == len(set(keys)) == 1 + 2 * (3 + len(REGION_RANKINGS))
    assert keys[:4] == [("none", "overall", 0), ("flip", "overall", 1)] + [
        ("gradient", "overall", 1),
        ("random", "overall", 1),
    ]  # in order of first appearance
    random = next(r for r in summary if (r["ranking"], r["k"]) == ("random", 2))
    assert random["draws"] == 2
    assert random["miou"] == pytest.approx(0.55) and random["miou_std"] == pytest.approx(0.05)
    assert random["miou_left"] == pytest.approx(0.56) and random["miou_right_std"] == pytest.approx(
        0.05
    )
    flip = next(r for r in summary if (r["ranking"], r["region"], r["k"]) == ("flip", "left", 1))
    assert flip["draws"] == 1 and flip["miou_std"] == 0.0 and flip["miou"] == pytest.approx(0.5)


def test_format_table_formats_each_column_and_shows_none_as_a_dash():
    table = format_table(
        [{"name": "a", "value": 0.12345, "n": 3}, {"name": "b", "value": None, "n": 10}],
        [("name", "Name", ""), ("value", "Value", ".2f"), ("n", "N", "03d")],
    )
    assert table.splitlines() == [
        "| Name | Value | N |",
        "|---|---|---|",
        "| a | 0.12 | 003 |",
        "| b | - | 010 |",
    ]
    assert format_table([], [("k", "k", "")]).splitlines() == ["| k |", "|---|"]


def test_clean_table_shows_the_whole_image_and_the_report_regions():
    lines = clean_table(CLEAN).splitlines()
    assert lines[0] == "| all | left half | right half | center | top-left quadrant |"
    assert lines[2] == "| 0.600 | 0.620 | 0.580 | 0.610 | 0.500 |"


def test_overall_table_puts_each_ranking_beside_random_draws(ablation):
    lines = overall_table(summarize_ablation(ablation)).splitlines()
    assert lines[0] == "| k | flip | gradient | random (mean ± std) |"
    assert lines[2:] == [
        "| 1 | 0.400 | 0.350 | 0.550 ± 0.050 |",
        "| 2 | 0.300 | 0.250 | 0.550 ± 0.050 |",
    ]
    only_random = [r for r in summarize_ablation(ablation) if r["ranking"] in ("none", "random")]
    assert overall_table(only_random).splitlines()[2] == "| 1 | - | - | 0.550 ± 0.050 |"


def test_region_table_lists_the_region_rankings_inside_and_outside(ablation):
    lines = region_table(ablation).splitlines()
    assert lines[0] == "| ranking | region | k | mIoU inside | mIoU outside |"
    assert len(lines) == 2 + 2 * len(REGION_RANKINGS)  # no overall row
    assert lines[2] == "| flip | left | 1 | 0.300 | 0.570 |"
    missing = [ablation_row("gradient", "cell", 2, 0.5, inside=None, outside=0.25)]
    assert region_table(missing).splitlines()[2] == "| gradient | cell | 2 | - | 0.250 |"


def test_attack_table_has_a_row_per_attack_and_radius():
    rows = [attack_row("RegionAttack", 8.0, 0.3), attack_row("PGD", 2.5, 0.2, specificity=None)]
    lines = attack_table(rows).splitlines()
    assert lines[0].startswith("| attack | eps (/255) | mIoU inside | mIoU outside | drop inside")
    assert lines[2] == (
        "| RegionAttack | 8 | 0.300 | 0.550 | 0.320 | 0.030 | 0.010 | 2.0 | 0.0314 | 1.25 | 0.50 |"
    )
    assert lines[3].startswith("| PGD | 2.5 | 0.200 |") and "| - |" in lines[3]


def test_fidelity_table_lists_each_correlation():
    fidelity = {"spearman": {"flip~exact_position": 0.51234, "gradient~exact_damage": None}}
    assert fidelity_table(fidelity).splitlines() == [
        "| estimate ~ measured | Spearman |",
        "|---|---|",
        "| flip~exact_position | 0.512 |",
        "| gradient~exact_damage | - |",
    ]


# ---------------------------------------------------------------- write_report
def test_a_report_of_the_clean_numbers_alone_has_no_figures(tmp_path, meta):
    write_report({"meta": meta, "clean": CLEAN}, tmp_path, num_classes=3)
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# regionattack bench: camvid\n")
    assert "Command: `regionattack bench --quiet`" in report
    assert "Commit abc123, torch 2.0, device cpu, 2 threads, 1 process(es)." in report
    assert "Images: 6; latent channels: 8." in report
    assert "## Clean mIoU\n\n" + clean_table(CLEAN) in report
    for absent in ("## Overall", "## Region-specific", "## Input attacks", "## Ranking fidelity"):
        assert absent not in report
    assert figures(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_an_empty_results_record_still_gives_a_report(tmp_path):
    write_report({}, tmp_path / "new", num_classes=3)
    report = (tmp_path / "new" / "report.md").read_text()
    assert report.startswith("# regionattack bench: ?") and "## " not in report


def test_the_ablation_sections_have_their_tables_timings_and_figures(tmp_path, meta, ablation):
    timings = {
        "seconds": 12.34,
        "naive_seconds_per_config": 0.5,
        "cached_seconds_per_config": 0.125,
        "speedup": 4.0,
    }
    results = {"meta": meta, "clean": CLEAN, "ablation": ablation, "ablation_timings": timings}
    write_report(results, tmp_path, num_classes=3)
    report = (tmp_path / "report.md").read_text()
    assert "Clean mIoU 0.600." in report
    assert overall_table(summarize_ablation(ablation)) in report
    assert region_table(ablation) in report
    assert (
        f"The sweep evaluated {len(ablation)} configurations in 12.3 s: 0.125 s per configuration "
        "with the latent computed once per batch vs 0.500 s for a full forward pass per "
        "configuration (4.0x)."
    ) in report
    assert "![ablation](ablation.png)" in report and "![regions](regions.png)" in report
    assert figures(tmp_path) == ["ablation.png", "regions.png"]
    for name in figures(tmp_path):
        assert_png(tmp_path / name)


def test_the_attack_section_shows_the_examples_of_the_strongest_radius(tmp_path, meta):
    attacks = [attack_row(name, eps, 0.3) for eps in (4.0, 8.0) for name in ("RegionAttack", "PGD")]
    results = {"meta": meta, "attacks": attacks}
    write_report(results, tmp_path, num_classes=3, region="right")
    report = (tmp_path / "report.md").read_text()
    assert "## Input attacks on the right region" in report and attack_table(attacks) in report
    assert "![attacks](attacks.png)" in report
    assert "examples.png" not in report and figures(tmp_path) == ["attacks.png"]  # none saved

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 16, 16, generator=generator)
    labels, clean, preds = (torch.randint(0, 3, (2, 16, 16), generator=generator) for _ in "abc")
    (tmp_path / "examples").mkdir()
    torch.save((images, labels, clean, preds), tmp_path / "examples" / "PGD-4.pt")  # not strongest
    write_report(results, tmp_path, num_classes=3, region="right")
    assert "examples.png" not in (tmp_path / "report.md").read_text()
    torch.save((images, labels, clean, preds), tmp_path / "examples" / "RegionAttack-8.pt")
    write_report(results, tmp_path, num_classes=3, region="right")
    assert "![examples](examples.png)" in (tmp_path / "report.md").read_text()
    assert figures(tmp_path) == ["attacks.png", "examples.png"]
    assert_png(tmp_path / "examples.png")


def test_the_fidelity_section_names_the_channels_and_correlations(tmp_path, meta):
    fidelity = {
        "channels": [0, 3, 5],
        "exact_damage": [0.1, 0.2, 0.3],
        "exact_position": [0.01, 0.03, 0.02],
        "estimated_damage": [0.12, 0.18, 0.33],
        "flip_score": [0.5, 0.1, 0.2],
        "gradient_score": [0.2, 0.4, 0.3],
        "spearman": {"gradient_estimate~exact_damage": 1.0, "flip~exact_position": -0.5},
    }
    write_report({"meta": meta, "fidelity": fidelity}, tmp_path, num_classes=3)
    report = (tmp_path / "report.md").read_text()
    assert "## Ranking fidelity (3 channels zeroed one at a time)" in report
    assert fidelity_table(fidelity) in report and "![fidelity](fidelity.png)" in report
    assert figures(tmp_path) == ["fidelity.png"]
    assert_png(tmp_path / "fidelity.png")
    assert not list(tmp_path.glob(".*.tmp"))
