"""The paper's claims, measured: on the demo model (synthetic streets) and on CamVid.

Each fixture trains a model from scratch (minutes on 2 CPU cores) in a temporary cache, runs the
whole demo pipeline and returns its results; the tests read them. The models differ between
machines (float rounding in training), so every threshold below leaves the margin the effect
really has: each claim was measured over training seeds 0, 1, 2 and with other CPU kernels
(``ATEN_CPU_CAPABILITY=default``; ``python -m benchmarks.claims_spread``), and each threshold
sits well below the smallest value seen (README, "How robust the claims are"). Claims without
such a margin are reported in the README, not asserted: the gradient ranking beating the flip
ranking or every random draw, and on the synthetic scenes beating random channels at all.
"""

import json
import os

import pytest

from regionattack.bench.report import summarize_ablation
from regionattack.cli import main
from regionattack.demo import DemoConfig, run_demo

from conftest import CAMVID_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("REGIONATTACK_CACHE_DIR")
    os.environ["REGIONATTACK_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        del os.environ["REGIONATTACK_CACHE_DIR"]
    else:
        os.environ["REGIONATTACK_CACHE_DIR"] = previous


@pytest.fixture(scope="module")
def synthetic(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "results.json").read_text()) | {"out": out}


@pytest.fixture(scope="module")
def camvid(cache, tmp_path_factory):
    if not (CAMVID_ROOT / "train").is_dir():
        pytest.skip(f"CamVid not found at {CAMVID_ROOT}")
    config = DemoConfig(
        data="camvid", root=str(CAMVID_ROOT), train_images=367, eval_images=101, progress=False
    )
    return run_demo(config, tmp_path_factory.mktemp("camvid"))


def drops(results, ranking, region, k):
    """mIoU drops (all, left, right) of the top-k of one ranking: clean minus ablated."""
    clean = results["clean"]
    row = next(
        r
        for r in summarize_ablation(results["ablation"])
        if (r["ranking"], r["region"], r["k"]) == (ranking, region, k)
    )
    return {part: clean[f"miou{part}"] - row[f"miou{part}"] for part in ("", "_left", "_right")}


def random_drops(results, k):
    """The mIoU drop of each random draw of k channels."""
    clean = results["clean"]["miou"]
    return [
        clean - r["miou"] for r in results["ablation"] if r["ranking"] == "random" and r["k"] == k
    ]


def largest_k(results):
    return max(r["k"] for r in results["ablation"])  # 20% of the channels


# Margins below the smallest value measured over seeds 0-2 and both CPU kernel sets (README, "How
# robust the claims are"; benchmarks/results/claims_spread.json): on CamVid the gradient top-20%
# drop exceeded the mean random drop by >= 0.015 in every run (on the synthetic scenes it did not:
# seed 2 gave 0.0004, so that claim is not asserted there); the left-ranked channels' left drop
# exceeded their right drop by >= 0.038 (synthetic) and >= 0.015 (CamVid).
MARGINS = {
    "synthetic": {"left_over_right": 0.015},
    "camvid": {"over_random_mean": 0.005, "left_over_right": 0.005},
}


def check_gradient_beats_random(results, margins):
    k = largest_k(results)
    top = drops(results, "gradient", "overall", k)[""]
    randoms = random_drops(results, k)
    assert len(randoms) == 5
    assert top > sum(randoms) / len(randoms) + margins["over_random_mean"], (top, randoms)


def check_left_ranked_zeroing_hurts_left_more(results, margins):
    left = drops(results, "gradient", "left", largest_k(results))
    assert left["_left"] > left["_right"] + margins["left_over_right"], left


def check_region_attack_is_region_specific(results, margins):
    del margins
    row = next(r for r in results["attacks"] if r["attack"] == "RegionAttack[segmentation]")
    pgd = next(r for r in results["attacks"] if r["attack"] == "PGD")
    assert row["linf"] <= 8 / 255 + 1e-6
    assert row["drop_inside"] > 0.1, row
    assert row["drop_inside"] > 3 * max(row["drop_outside"], 0.0), row
    assert row["changed_outside"] < pgd["changed_outside"] / 3, (row, pgd)


CHECKS = {
    "synthetic": [
        check_left_ranked_zeroing_hurts_left_more,
        check_region_attack_is_region_specific,
    ],
    "camvid": [
        check_gradient_beats_random,
        check_left_ranked_zeroing_hurts_left_more,
        check_region_attack_is_region_specific,
    ],
}


@pytest.mark.parametrize("check", CHECKS["synthetic"], ids=lambda c: c.__name__)
def test_demo_claims(synthetic, check):
    check(synthetic, MARGINS["synthetic"])


@pytest.mark.parametrize("check", CHECKS["camvid"], ids=lambda c: c.__name__)
def test_camvid_claims(camvid, check):
    check(camvid, MARGINS["camvid"])


def test_demo_writes_figures_and_resumes(synthetic, capsys, tmp_path):
    for figure in ("ablation.png", "attacks.png", "examples.png"):
        assert (synthetic["out"] / figure).stat().st_size > 10_000, figure
    assert not synthetic["meta"]["model"]["cached"]
    assert main(["demo", "--out", str(tmp_path), "--eval-images", "8", "--attack-images", "2"]) == 0
    printed = capsys.readouterr().out
    assert "(cached:" in printed and "timings (s)" in printed
    assert json.loads((tmp_path / "results.json").read_text())["meta"]["model"]["cached"]


def test_demo_shows_a_vulnerability_map_and_reads_it_back(synthetic, capsys, tmp_path):
    assert (synthetic["out"] / "map.png").stat().st_size > 10_000
    stored = json.loads((synthetic["out"] / "map.json").read_text())
    assert stored["fingerprint"]["grid"] == [3, 3] and stored["fingerprint"]["images"] == 16
    rows = stored["units"]["map"]["rows"]
    assert len(rows) == 9 and {"changed_inside", "miou_drop", "channel_drop"} <= set(rows[0])
    table = (synthetic["out"] / "map.md").read_text()
    assert table.count("\n") == 11 and "| (2, 2) |" in table
    command = ["demo", "--out", str(tmp_path), "--eval-images", "8", "--attack-images", "2"]
    assert main([*command, "--map-grid", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Where can it be broken? RegionAttack on each cell of a 2x2 grid" in printed
    first = (tmp_path / "map.json").read_bytes()
    assert main([*command, "--map-grid", "2", "--quiet"]) == 0  # read back, not attacked again
    assert (tmp_path / "map.json").read_bytes() == first
    assert "map 0.0" not in capsys.readouterr().out  # the stored seconds are reported
    assert main([*command, "--map-grid", "3", "--quiet"]) == 2  # another grid: refused
    assert "map.json" in capsys.readouterr().err
    assert main([*command, "--map-grid", "0", "--out", str(tmp_path / "none"), "--quiet"]) == 0
    assert "Where can it be broken?" not in capsys.readouterr().out
    assert not (tmp_path / "none" / "map.json").exists()


def test_demo_rejects_camvid_without_root(capsys):
    assert main(["demo", "--data", "camvid"]) == 2
    assert "--root" in capsys.readouterr().err
