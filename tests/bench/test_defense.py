"""Tests of regionattack.bench.evaluate_defense and benchmarks/defenses.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from regionattack.ablation import ablated_predictions
from regionattack.bench import defense
from regionattack.bench.defense import evaluate_defense
from regionattack.bench.defense_report import DefenseReport
from regionattack.defenses import set_padding
from regionattack.metrics import ConfusionMatrix
from regionattack.models import TinySegmenter, save_checkpoint
from regionattack.ranking import rank_channels
from regionattack.regions import named
from tests.helpers import REPO, assert_untouched, snapshot, tiny_task

FAST = {"steps": 2, "probe_images": 6, "probe_epochs": 5, "random_draws": 3, "progress": False}


@pytest.fixture
def data():
    return tiny_task(8, torch.Generator().manual_seed(1))


@pytest.fixture
def models(tiny_segmenter):
    torch.manual_seed(0)
    return {"trained": tiny_segmenter, "untrained": TinySegmenter(num_classes=3, latent_channels=8)}


def test_every_measurement_for_every_model_and_the_models_are_left_as_they_were(models, data):
    models["untrained"].train()  # a model in training mode stays in training mode
    before = {name: snapshot(model) for name, model in models.items()}
    report = evaluate_defense(models, data, eps=(4 / 255, 8 / 255), k_fraction=0.25, **FAST)
    for name, model in models.items():
        assert_untouched(model, before[name])
    assert list(report.models) == ["trained", "untrained"]
    for result in report.models.values():
        assert set(result["attacks"]) == {"RegionAttack/4", "RegionAttack/8", "PGD/4", "PGD/8"}
        assert result["probe"]["chance"] == pytest.approx(1 / 9)
        assert 0 <= result["probe"]["accuracy"] <= 1
        assert len(result["ablation"]["random"]) == 3
        assert result["ablation"]["k"] == 2  # ceil(0.25 * 8)
        shift = result["shift"]
        assert shift["ratio"] == pytest.approx(shift["mse"] / (2 * shift["image_variance"]))
        assert shift["ratio"] > 0
    assert report.settings["channels"] == 8
    assert set(report.seconds) >= {"trained/clean", "untrained/attack/PGD/8"}


def test_clean_miou_and_channel_zeroing_match_an_independent_computation(models, data):
    images, labels = data
    model = models["trained"]
    report = evaluate_defense(models, data, eps=(8 / 255,), k_fraction=0.25, **FAST)
    result = report.models["trained"]
    with torch.no_grad():
        preds = model(images).argmax(1)
    confusion = ConfusionMatrix(3)
    confusion.update(preds, labels)
    assert result["clean"]["miou"] == pytest.approx(confusion.miou())
    inside = ConfusionMatrix(3)
    inside.update(preds, labels, named("left", (16, 16)))
    assert result["clean"]["miou_inside"] == pytest.approx(inside.miou())

    ablation = result["ablation"]
    expected = rank_channels(model, images, method="gradient").top(2)
    assert ablation["gradient_channels"] == expected.tolist()
    zeroed = ablated_predictions(model, images, [expected])[0]
    confusion = ConfusionMatrix(3)
    confusion.update(zeroed, labels)
    assert ablation["gradient"] == pytest.approx(confusion.miou())
    random = torch.tensor(ablation["random"], dtype=torch.float64)
    assert ablation["random_mean"] == pytest.approx(float(random.mean()))


def test_a_zero_radius_attack_changes_nothing_and_a_real_one_does(models, data):
    report = evaluate_defense(models, data, eps=(0, 16 / 255), **{**FAST, "steps": 5})
    for result in report.models.values():
        for name in ("RegionAttack", "PGD"):
            still = result["attacks"][f"{name}/0"]
            assert still["drop_inside"] == 0 and still["drop_outside"] == 0
            assert still["linf"] == 0
            assert still["clean_miou_inside"] == pytest.approx(result["clean"]["miou_inside"])
    strong = report.models["trained"]["attacks"]
    assert strong["RegionAttack/16"]["drop_inside"] > 0.1
    assert strong["RegionAttack/16"]["linf"] <= 16 / 255 + 1e-6
    assert strong["PGD/16"]["miou"] < report.models["trained"]["clean"]["miou"] - 0.1


def test_results_are_written_and_a_rerun_resumes_without_recomputing(
    models, data, tmp_path, monkeypatch
):
    out = tmp_path / "defense"
    first = evaluate_defense(models, data, eps=(8 / 255,), out=out, **FAST)
    results = json.loads((out / "results.json").read_text())
    assert set(results["units"]) >= {"trained/clean", "untrained/probe_permuted", "trained/shift"}
    report = (out / "report.md").read_text()
    assert report.count("\n| trained |") == 1 and report.count("\n| untrained |") == 1
    assert (out / "defenses.png").stat().st_size > 10_000
    assert DefenseReport.from_results(results).to_dict() == first.to_dict()

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a finished unit")

    monkeypatch.setattr(defense, "run_attack", fail)
    monkeypatch.setattr(defense, "evaluate_clean", fail)
    again = evaluate_defense(models, data, eps=(8 / 255,), out=out, **FAST)
    assert again.models == first.models

    with torch.no_grad():
        models["untrained"].segmentation_head.weight.add_(
            0.1
        )  # another model: the file is not mixed in
    with pytest.raises(ValueError, match="another configuration.*models"):
        evaluate_defense(models, data, eps=(8 / 255,), out=out, **FAST)


def test_a_rerun_on_other_images_is_refused_not_resumed(models, data, tmp_path):
    out = tmp_path / "defense"
    evaluate_defense(models, data, eps=(8 / 255,), out=out, **FAST)
    images, labels = data
    other = (images.flip(-1), labels.flip(-1))  # same count, size and settings, other images
    with pytest.raises(ValueError, match="another configuration.*data"):
        evaluate_defense(models, other, eps=(8 / 255,), out=out, **FAST)
    again = evaluate_defense(
        models, (images.clone(), labels.clone()), eps=(8 / 255,), out=out, **FAST
    )
    assert set(again.models) == set(models)  # equal tensors resume


@pytest.mark.parametrize(
    ("eps", "message"),
    [((8,), "did you mean 8/255"), ((8 / 255, -1 / 255), ">= 0"), ((), "at least one eps")],
)
def test_radii_are_in_image_units_and_checked_before_any_work(
    models, data, monkeypatch, eps, message
):
    monkeypatch.setattr(defense, "evaluate_clean", _fail)
    with pytest.raises(ValueError, match=message):
        evaluate_defense(models, data, eps=eps, **FAST)


def test_the_global_random_state_is_left_as_it_was(models, data):
    before = torch.get_rng_state()
    evaluate_defense(models, data, eps=(8 / 255,), **FAST)
    assert torch.equal(torch.get_rng_state(), before)


def _fail(*args, **kwargs):
    raise AssertionError("work started before the arguments were checked")


def test_position_channel_attack_region_pgd_sea_and_apgd_peers_can_be_evaluated(models, data):
    attacks = ("PositionChannelAttack[apgd]", "RegionPGD", "SEA", "CosPGD[apgd]")
    report = evaluate_defense(models, data, attacks=attacks, eps=(8 / 255,), **FAST)
    assert set(report.models["trained"]["attacks"]) == {f"{name}/8" for name in attacks}
    assert "PositionChannelAttack[apgd] 8/255" in report.table()
    sea = report.models["trained"]["attacks"]["SEA/8"]
    assert 0 < sea["linf"] <= 8 / 255 + 1e-6


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"attacks": ("FGSM",)}, ValueError, "unknown attack"),
        ({"region": "middle"}, ValueError, "region"),
        ({"probe_images": 5}, ValueError, "probe_images"),
        ({"probe_images": 9}, ValueError, "probe_images"),
        ({"models": {}}, TypeError, "non-empty mapping"),
        ({"models": {"a/b": TinySegmenter()}}, ValueError, "without '/'"),
        (
            {"models": {"a": TinySegmenter(), "b": TinySegmenter(num_classes=5)}},
            ValueError,
            "disagree",
        ),
        ({"data": torch.rand(2, 3, 16, 16)}, TypeError, "Dataset"),
        ({"data": (torch.rand(2, 3, 16, 16), torch.zeros(2, 8, 8))}, ValueError, "labels"),
        ({"steps": 0}, ValueError, "steps must be positive"),
        ({"k_fraction": 0.0}, ValueError, "k_fraction"),
        ({"random_draws": -1}, ValueError, "random_draws"),
        ({"seed": "a"}, TypeError, "seed"),
        ({"batch_size": 1.5}, TypeError, "batch_size"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(models, data, change, error, match):
    arguments = {"models": models, "data": data, **change}
    with pytest.raises(error, match=match):
        evaluate_defense(arguments.pop("models"), arguments.pop("data"), **{**FAST, **arguments})


@pytest.mark.slow
def test_the_benchmark_script_rebuilds_checkpoints_with_their_padding(tmp_path):
    """benchmarks/defenses.py on a tiny CamVid folder, one zero- and one reflect-padded model."""
    import numpy as np
    from PIL import Image

    from regionattack.models import build_model

    root = tmp_path / "camvid"
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "val" / f"f{i}.png")
        label = np.zeros((32, 48), np.uint8)
        label[:, 24:] = 3
        Image.fromarray(label).save(root / "valannot" / f"f{i}.png")
    options = {"encoder_output_stride": 16, "decoder_channels": 16}
    meta = {
        "architecture": "smp:DeepLabV3:resnet18",
        "options": options,
        "classes": [str(i) for i in range(11)],
        "size": [32, 48],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
    }
    torch.manual_seed(0)
    network = build_model("smp:DeepLabV3:resnet18", 11, **options)
    save_checkpoint(tmp_path / "zeros.pt", network, meta)
    save_checkpoint(
        tmp_path / "reflect.pt", set_padding(network, "reflect"), {**meta, "padding": "reflect"}
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "defenses.py"),
        *("--dataset", "camvid", "--root", str(root), "--quiet", "--out", str(out)),
        *("--checkpoint", f"zeros={tmp_path / 'zeros.pt'}"),
        *("--checkpoint", f"reflect={tmp_path / 'reflect.pt'}"),
        *(
            "--attacks",
            "RegionAttack",
            "--eps",
            "8/255",
            "--attack-steps",
            "1",
            "--attack-images",
            "2",
        ),
        *("--random-draws", "1", "--batch-size", "3"),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr
    assert "| zeros |" in completed.stdout and "| reflect |" in completed.stdout
    results = json.loads((out / "results.json").read_text())
    zeros, reflect = (results["units"][f"{n}/clean"]["all"] for n in ("zeros", "reflect"))
    assert zeros != reflect  # the same weights behave differently once the padding is converted
    assert results["meta"]["settings"]["probe_images"] == 6
    assert results["meta"]["environment"]["command"]  # where the numbers were measured

    refused = subprocess.run(
        [*command, "--checkpoint", f"missing={tmp_path / 'missing.pt'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2 and "defenses: error" in refused.stderr


def test_shift_sensitivity_is_zero_when_shifts_change_nothing():
    """Flat images look the same however they are shifted: their pooled latents do not move."""
    from regionattack.bench.defense import _shift_sensitivity
    from regionattack.bench.setting import Setting

    model = TinySegmenter(num_classes=3, latent_channels=8).eval()
    flat = torch.rand(8, 3, 1, 1, generator=torch.Generator().manual_seed(0)).expand(8, 3, 16, 16)
    setting = Setting(model, [], 1, 3, {})
    result = _shift_sensitivity(setting, flat.contiguous(), {"seed": 0})
    assert result["mse"] == pytest.approx(0.0, abs=1e-10)
    assert result["image_variance"] > 0 and result["ratio"] == pytest.approx(0.0, abs=1e-6)
    textured = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert _shift_sensitivity(setting, textured, {"seed": 0})["ratio"] > 0.01


@pytest.mark.parametrize("part", ["clean", "probe", "shift", "ablation", "attack/RegionAttack/8"])
def test_a_damaged_unit_is_refused_on_resume_and_a_sound_file_resumes(part, tmp_path):
    from regionattack.models import TinySegmenter

    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(6, 16, 16, dtype=torch.long)
    nets = {"a": TinySegmenter(num_classes=3).eval()}
    options = dict(eps=(8 / 255,), steps=1, probe_images=6, probe_epochs=2, random_draws=1,
                   progress=False, out=tmp_path)  # fmt: skip
    first = evaluate_defense(nets, (images, labels), **options)
    again = evaluate_defense(nets, (images, labels), **options)  # every unit read back
    assert again.models == first.models
    path = tmp_path / "results.json"
    record = json.loads(path.read_text())
    record["units"][f"a/{part}"] = {"broken": [1]}
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"the stored unit 'a/{part}' is damaged"):
        evaluate_defense(nets, (images, labels), **options)
