"""The paper's claims, measured: on the demo model (synthetic streets) and on CamVid.

Each fixture trains a model from scratch (minutes on 2 CPU cores) in a temporary cache, runs the
whole demo pipeline and returns its results; the tests read them. The models differ between
machines (float rounding in training), so every threshold below leaves the margin the effect
really has: each claim was measured over training seeds 0, 1, 2 and with other CPU kernels
(``ATEN_CPU_CAPABILITY=default``; ``python -m benchmarks.claims_spread``), and each threshold
sits well below the smallest value seen (docs/results/demo.md, "How robust the claims are"). Claims without
such a margin are reported in docs/results/demo.md, not asserted: the gradient ranking beating the flip
ranking or every random draw, and on the synthetic scenes beating random channels at all.
"""

import pytest

from regionattack.bench.report import summarize_ablation

pytestmark = pytest.mark.slow


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
def test_demo_claims(synthetic_demo, check):
    check(synthetic_demo, MARGINS["synthetic"])


@pytest.mark.parametrize("check", CHECKS["camvid"], ids=lambda c: c.__name__)
def test_camvid_claims(camvid_demo, check):
    check(camvid_demo, MARGINS["camvid"])
