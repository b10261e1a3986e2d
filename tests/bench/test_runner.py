"""``regionattack bench`` end to end on a tiny CamVid folder: schema, report, resume, torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import regionattack as ra
from regionattack.bench import runner
from regionattack.bench.runner import BenchConfig, run_benchmark
from regionattack.cli import main
from regionattack.models import save_checkpoint


def bench_args(camvid: Path, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset",
        "camvid",
        "--root",
        str(camvid),
        "--checkpoint",
        str(checkpoint),
        "--eps",
        "8/255",
        "--attack-steps",
        "2",
        "--random-draws",
        "2",
        "--fidelity-channels",
        "5",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def numbers(results: dict) -> dict:
    """The measured values of a results file, without timings."""
    attacks = [
        {k: v for k, v in row.items() if k != "seconds_per_image"} for row in results["attacks"]
    ]
    fidelity = {k: v for k, v in results["fidelity"].items() if k != "seconds"}
    return {
        "clean": results["clean"],
        "ablation": results["ablation"],
        "attacks": attacks,
        "fidelity": fidelity,
    }


@pytest.fixture(scope="module")
def full_run(camvid, checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "full"
    assert main(["bench", *bench_args(camvid, checkpoint, out)]) == 0
    return out


@pytest.mark.slow
def test_results_follow_the_documented_schema(full_run):
    results = json.loads((full_run / "results.json").read_text())
    assert set(results["clean"]) >= {"miou", "miou_left", "miou_right", "miou_center"}
    ablation = results["ablation"]
    assert {row["ranking"] for row in ablation} == {"none", "flip", "gradient", "random"}
    assert {row["region"] for row in ablation} == {"overall", "left", "right", "cell"}
    for row in ablation:
        assert set(row) >= {"ranking", "region", "k", "seed", "miou", "miou_left", "miou_right"}
        assert 0.0 <= row["miou"] <= 1.0
    # 512 channels: k in {6, 13, 26, 52, 103}; 2 random draws per k.
    randoms = [row for row in ablation if row["ranking"] == "random"]
    assert sorted({row["k"] for row in randoms}) == [6, 13, 26, 52, 103]
    assert len(randoms) == 10
    clean_row = next(row for row in ablation if row["k"] == 0)
    assert clean_row["miou"] == pytest.approx(results["clean"]["miou"])
    names = [row["attack"] for row in results["attacks"]]
    assert names == list(runner.DEFAULT_ATTACKS)
    for row in results["attacks"]:
        assert set(row) >= {
            "attack",
            "eps",
            "region",
            "miou_inside",
            "miou_outside",
            "linf",
            "seconds_per_image",
        }
        assert row["linf"] <= 8 / 255 + 1e-6
        assert row["images"] == 6
    assert len(results["fidelity"]["channels"]) == 5
    meta = results["meta"]
    assert meta["environment"]["torch"] == torch.__version__
    assert meta["model"]["latent_channels"] == 512
    assert results["ablation_timings"]["speedup"] > 0


@pytest.mark.slow
def test_report_and_figures_are_written(full_run):
    report = (full_run / "report.md").read_text()
    for heading in ("Clean mIoU", "Overall position channels", "Input attacks", "fidelity"):
        assert heading in report
    for figure in ("ablation.png", "regions.png", "attacks.png", "examples.png", "fidelity.png"):
        assert (full_run / figure).stat().st_size > 5_000, figure
        assert f"({figure})" in report


@pytest.mark.slow
def test_interrupted_run_resumes_with_the_same_numbers(
    camvid, checkpoint, full_run, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "resumed"
    real_run_attack = runner.run_attack
    calls: list[str] = []

    def interrupted(*args, **kwargs):
        calls.append(kwargs["description"])
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C in the middle of the third attack
        return real_run_attack(*args, **kwargs)

    monkeypatch.setattr(runner, "run_attack", interrupted)
    assert main(["bench", *bench_args(camvid, checkpoint, out)]) == 130
    partial = json.loads((out / "results.json").read_text())  # valid JSON, finished units only
    assert [row["attack"] for row in partial["attacks"]] == list(runner.DEFAULT_ATTACKS[:2])
    assert "fidelity" not in partial
    assert not list(out.glob(".*.tmp"))
    assert "run the same command again to resume" in capsys.readouterr().err

    calls.clear()
    monkeypatch.setattr(
        runner, "run_attack", lambda *a, **k: calls.append(1) or real_run_attack(*a, **k)
    )
    assert main(["bench", *bench_args(camvid, checkpoint, out)]) == 0
    assert len(calls) == len(runner.DEFAULT_ATTACKS) - 2  # finished attacks were skipped
    resumed = json.loads((out / "results.json").read_text())
    assert numbers(resumed) == numbers(json.loads((full_run / "results.json").read_text()))


@pytest.mark.slow
def test_another_configuration_is_refused(camvid, checkpoint, full_run, capsys):
    args = bench_args(camvid, checkpoint, full_run, "--attack-steps", "3")
    assert main(["bench", *args]) == 2
    assert "differs in: attack_steps" in capsys.readouterr().err


def _forbid_work(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("recomputed a finished unit or started work before checking")

    for name in ("run_attack", "evaluate_clean", "rank", "ablation_sweep", "load_model"):
        monkeypatch.setattr(runner, name, fail)


@pytest.mark.slow
def test_the_same_files_under_another_spelling_resume(
    camvid, checkpoint, full_run, tmp_path, monkeypatch
):
    moved = tmp_path / "renamed.pt"
    shutil.copy(checkpoint, moved)
    os.utime(moved, (1_000_000, 1_000_000))  # another name and another time: the same weights
    monkeypatch.chdir(camvid.parent)
    for name in ("run_attack", "evaluate_clean", "rank", "ablation_sweep"):
        monkeypatch.setattr(runner, name, lambda *a, **k: pytest.fail("recomputed a unit"))
    before = numbers(json.loads((full_run / "results.json").read_text()))
    assert main(["bench", *bench_args(Path(camvid.name), moved, full_run)]) == 0
    assert numbers(json.loads((full_run / "results.json").read_text())) == before


@pytest.mark.slow
def test_another_model_in_a_file_of_the_same_size_and_time_is_refused(
    camvid, checkpoint, full_run, tmp_path, capsys
):
    from regionattack.models import build_from_checkpoint

    model, meta = build_from_checkpoint(checkpoint)
    with torch.no_grad():
        next(model.parameters()).mul_(0.5)
    other = tmp_path / "model.pt"
    save_checkpoint(other, model.model, meta)
    stat = checkpoint.stat()
    os.utime(other, (stat.st_atime, stat.st_mtime))
    assert main(["bench", *bench_args(camvid, other, full_run)]) == 2
    assert "differs in: model_state" in capsys.readouterr().err


@pytest.mark.slow
def test_other_images_are_refused(camvid, checkpoint, full_run, tmp_path, capsys):
    copy = tmp_path / "camvid"
    shutil.copytree(camvid, copy)
    (copy / "val" / "frame05.jpg").unlink()
    (copy / "valannot" / "frame05.png").unlink()
    assert main(["bench", *bench_args(copy, checkpoint, full_run)]) == 2
    assert "differs in: data" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--eps", "8"), "did you mean 8/255"),
        (("--eps", "0,300/255,-8/255"), "eps"),
        (("--eps", "8/0"), "fraction such as 8/255"),
    ],
)
def test_radii_are_in_image_units(camvid, checkpoint, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *bench_args(camvid, checkpoint, tmp_path / "out"), *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--attack-steps", "0"), "argument --attack-steps: must be at least 1"),
        (("--random-draws", "-1"), "argument --random-draws: must be at least 0"),
        (("--attacks", "RegionAttack,FGSM"), "unknown attack 'FGSM'"),
        (("--attacks", "RegionAttack[loud]"), "unknown attack"),
        (("--attack-region", "middle"), "attack_region must be one of"),
    ],
)
def test_bad_settings_are_refused_before_any_work(
    camvid, checkpoint, tmp_path, monkeypatch, capsys, flags, message
):
    _forbid_work(monkeypatch)
    out = tmp_path / "out"
    try:
        status = main(["bench", *bench_args(camvid, checkpoint, out), *flags])
    except SystemExit as exit_info:  # refused by the argument parser
        status = exit_info.code
    assert status == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_output_path_that_is_a_file_or_a_foreign_json_is_refused(
    camvid, checkpoint, tmp_path, capsys
):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert main(["bench", *bench_args(camvid, checkpoint, a_file)]) == 2
    assert "is a file" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.json").write_text("[1, 2]")
    assert main(["bench", *bench_args(camvid, checkpoint, foreign)]) == 2
    assert "not a results file" in capsys.readouterr().err
    (foreign / "results.json").write_text("{truncated")
    assert main(["bench", *bench_args(camvid, checkpoint, foreign)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_model_without_classes_matching_the_dataset_is_refused(camvid, tmp_path):
    config = BenchConfig(
        dataset="camvid",
        root=str(camvid),
        out=str(tmp_path),
        model="smp:FPN:resnet18",
        num_classes=4,
        size=(32, 64),  # FPN needs multiples of 32
        progress=False,
    )
    with pytest.raises(ValueError, match="predicts 4 classes but camvid has 11"):
        run_benchmark(config)


def test_size_must_suit_the_output_stride(camvid, checkpoint, tmp_path, capsys):
    args = bench_args(camvid, checkpoint, tmp_path, "--size", "30x48")
    assert main(["bench", *args]) == 2
    assert "not divisible by the model's output stride 16" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_under_torchrun_give_the_single_process_numbers(camvid, checkpoint, tmp_path):
    """Sharded over 2 gloo processes; batch size 1 so every image is computed alike."""
    args = bench_args(camvid, checkpoint, tmp_path / "one", "--batch-size", "1")
    assert main(["bench", *args]) == 0
    two = bench_args(camvid, checkpoint, tmp_path / "two", "--batch-size", "1")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "regionattack.cli",
        "bench",
        *two,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    single = numbers(json.loads((tmp_path / "one" / "results.json").read_text()))
    sharded = numbers(json.loads((tmp_path / "two" / "results.json").read_text()))
    assert sharded["clean"] == single["clean"]
    assert sharded["ablation"] == single["ablation"]
    for a, b in zip(sharded["attacks"], single["attacks"], strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            expected = (
                pytest.approx(b[key], rel=1e-6, abs=1e-9) if isinstance(value, float) else b[key]
            )
            assert value == expected, (a["attack"], key)
    assert sharded["fidelity"]["channels"] == single["fidelity"]["channels"]
    # Losses (~2.4 per pixel) agree to float32 rounding; the thread count differs between runs.
    assert sharded["fidelity"]["exact_damage"] == pytest.approx(
        single["fidelity"]["exact_damage"], abs=1e-6
    )
    meta = json.loads((tmp_path / "two" / "results.json").read_text())["meta"]
    assert meta["environment"]["world_size"] == 2


def test_run_experiments_on_a_model_and_tensors_in_memory(tiny_segmenter, tmp_path):
    """The demo's path: any model and (images, labels) tensors; the model and RNG left as found."""
    from torch.utils.data import TensorDataset

    from regionattack.bench.runner import run_experiments
    from regionattack.metrics import ConfusionMatrix
    from tests.helpers import assert_untouched, snapshot, tiny_task

    images, labels = tiny_task(6, torch.Generator().manual_seed(3))
    config = BenchConfig(
        dataset="tiny",
        root="",
        out=str(tmp_path),
        eps=(8 / 255,),
        attack_steps=2,
        attacks=(
            "RegionAttack[channels]",
            "RegionAttack",
            "PositionChannelAttack[apgd]",  # ranks its region although no ranking lists it
            "SEA[mce]",
            "PGD",
        ),
        rankings=("flip", "gradient"),
        random_draws=2,
        fidelity_channels=3,
        batch_size=4,
        progress=False,
    )
    model = tiny_segmenter.train()
    before, state = snapshot(model), torch.get_rng_state()
    results = run_experiments(config, model, TensorDataset(images, labels))
    assert_untouched(model, before)
    assert torch.equal(torch.get_rng_state(), state)

    expected = ConfusionMatrix(3)
    with torch.no_grad():
        expected.update(model.eval()(images).argmax(1), labels)
    model.train()
    assert results["clean"]["miou"] == pytest.approx(expected.miou())
    assert next(r for r in results["ablation"] if r["k"] == 0)["miou"] == results["clean"]["miou"]
    assert [r["attack"] for r in results["attacks"]] == list(config.attacks)
    assert {r["region"] for r in results["ablation"]} == {"overall"}  # only listed rankings
    assert results["meta"]["model"]["latent_channels"] == 8
    assert len(results["fidelity"]["channels"]) == 3
    again = run_experiments(config, model, TensorDataset(images, labels))  # resumes
    assert numbers(again) == numbers(results)


def test_a_ranking_file_of_another_model_is_refused_on_resume(tiny_segmenter, tmp_path):
    from regionattack.models import TinySegmenter

    rerun, images = _finished_tiny_run(tiny_segmenter, tmp_path)
    other = TinySegmenter(num_classes=3).eval()  # other random weights
    ra.rank_channels(other, images, method="flip").save(tmp_path / "rankings" / "flip.json")
    with pytest.raises(ValueError, match=r"flip\.json does not belong to this run .*another model"):
        rerun()


@pytest.mark.parametrize("device", ["tpu", "gpu0", "cuda:99"])
def test_a_device_this_machine_lacks_is_refused_before_any_work(device):
    if device == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("this machine has 100 GPUs")
    config = BenchConfig(dataset="camvid", root=".", out=".", device=device)
    with pytest.raises(ValueError, match=f"device .*{device}"):
        config.validate()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_naming_the_fix():
    with pytest.raises(ValueError, match="no CUDA device is available here; use 'cpu'"):
        BenchConfig(dataset="camvid", root=".", out=".", device="cuda").validate()


@pytest.mark.parametrize(
    ("key", "damage"),
    [("clean", 5), ("ablation", {"rows": "x"}), ("attack/RegionAttack/8", {"attack": ["x"]})],
)
def test_a_damaged_unit_in_results_json_is_refused_on_resume(tiny_segmenter, tmp_path, key, damage):
    rerun, images = _finished_tiny_run(tiny_segmenter, tmp_path)
    path = tmp_path / "results.json"
    record = json.loads(path.read_text())
    record["units"][key] = damage
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"the stored unit '{key}' is damaged"):
        rerun()


def _finished_tiny_run(model, out):
    """A finished two-unit-kind bench run in ``out``; returns a rerun and the images it used."""
    from torch.utils.data import TensorDataset

    from regionattack.bench.runner import run_experiments
    from tests.helpers import tiny_task

    images, labels = tiny_task(4, torch.Generator().manual_seed(3))
    data = TensorDataset(images, labels)
    config = BenchConfig(dataset="tiny", root="", out=str(out), eps=(8 / 255,),
                         attack_steps=1, attacks=("RegionAttack",), rankings=("flip",),
                         random_draws=1, fidelity_channels=0, batch_size=4, progress=False)  # fmt: skip
    run_experiments(config, model, data)
    return (lambda: run_experiments(config, model, data)), images
