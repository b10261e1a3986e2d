"""The paper's claims, measured: on the demo model (synthetic streets) and on CamVid.

Each fixture trains a model from scratch (minutes on 2 CPU cores) in a temporary cache, runs the
whole demo pipeline and returns its results; the tests read them. Numbers are printed by the demo
(see README's Results); these tests assert only what the README claims.
"""

import json
import os

import pytest

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
    config = DemoConfig(data="camvid", root=str(CAMVID_ROOT), train_images=367, eval_images=101)
    return run_demo(config, tmp_path_factory.mktemp("camvid"))


def _row(results, ranking, region, k):
    return next(
        r
        for r in results["ablation_summary"]
        if (r["ranking"], r["region"], r["k"]) == (ranking, region, k)
    )


def _ks(results):
    return sorted({r["k"] for r in results["ablation_summary"] if r["k"] > 0})


def check_gradient_beats_random(results, first=2):
    clean = results["clean"]["miou"]
    for k in _ks(results)[first:]:  # from 5% (first=2) of the channels up to 20%
        top = _row(results, "gradient", "overall", k)
        rand = _row(results, "random", "overall", k)
        drop_top, drop_rand = clean - top["miou"], clean - rand["miou"]
        assert drop_top > 2 * max(drop_rand, 0.0) + 3 * rand["miou_std"], (k, top, rand)
        assert drop_top > 0.01, (k, top)


def check_left_ranked_zeroing_hurts_left_more(results):
    clean = results["clean"]
    k = _ks(results)[-1]  # 20% of the channels
    row = _row(results, "gradient", "left", k)
    drop_left = clean["miou_left"] - row["miou_left"]
    drop_right = clean["miou_right"] - row["miou_right"]
    assert drop_left > drop_right + 0.02, (drop_left, drop_right)


def check_region_attack_is_region_specific(results):
    row = next(
        r for r in results["attacks"] if r["attack"].startswith("RegionAttack[segmentation]")
    )
    assert row["linf"] <= 8 / 255 + 1e-6
    assert row["drop_inside"] > 0.1, row
    assert row["drop_inside"] > 3 * max(row["drop_outside"], 0.0), row


def check_flip_is_measured(results):
    for k in _ks(results):
        row = _row(results, "flip", "overall", k)
        assert 0 <= row["miou"] <= 1


CHECKS = [
    check_gradient_beats_random,
    check_left_ranked_zeroing_hurts_left_more,
    check_region_attack_is_region_specific,
    check_flip_is_measured,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_demo_claims(synthetic, check):
    check(synthetic)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_camvid_claims(camvid, check):
    if check is check_gradient_beats_random:
        # On our CamVid model the overall ranking beats random clearly only at 20% of the
        # channels (README, Results); at 5% and 10% the difference is within 0.01 mIoU.
        check(camvid, first=-1)
    else:
        check(camvid)


def test_demo_writes_figures_and_uses_its_cache(synthetic, capsys, tmp_path):
    assert (synthetic["out"] / "ablation.png").stat().st_size > 10_000
    assert (synthetic["out"] / "attacks.png").stat().st_size > 10_000
    assert not synthetic["model"]["cached"]
    assert main(["demo", "--out", str(tmp_path), "--eval-images", "8", "--attack-images", "2"]) == 0
    printed = capsys.readouterr().out
    assert "(cached:" in printed and "timings (s)" in printed
    assert json.loads((tmp_path / "results.json").read_text())["model"]["cached"]


def test_demo_rejects_camvid_without_root(capsys):
    assert main(["demo", "--data", "camvid"]) == 2
    assert "--root" in capsys.readouterr().err
