"""Tests of benchmarks/perf.py: one tiny run of every section, its JSON and Markdown, bad arguments.

No timing is asserted (machines are noisy); the tests check what the numbers are made of.
"""

import json
import statistics
import sys

import pytest
import torch

from benchmarks import perf, perf_sections

pytestmark = pytest.mark.slow  # runs a script end to end (seconds to minutes)

TINY = [
    "--model", "smp:DeepLabV3:resnet18",
    "--option", "encoder_output_stride=16",
    "--option", "decoder_channels=16",
    "--size", "32x48",
    "--batch-size", "2",
    "--steps", "2",
    "--repeats", "2",
    "--warmup", "1",
    "--scaling-sizes", "64x96",
    "--scaling-batches", "1,2",
    "--threads", "1",
    "--quiet",
]  # fmt: skip


def run_main(argv):
    """Run ``main`` in-process without leaking its thread count or seeds into other tests."""
    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng():
            return perf.main(argv)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("perf") / "perf.json"
    code = run_main([*TINY, "--out", str(out)])
    return code, out, json.loads(out.read_text())


def check_memory(record, positive=True):
    """A number of MiB (positive when ``positive``), or None with the reason."""
    if record["mib"] is None:
        assert isinstance(record["reason"], str) and record["reason"]
    else:
        assert isinstance(record["mib"], float) and record["reason"] is None
        # the kernel's counters are exact to a few hundred KiB: a tiny call may read -0.01 MiB
        assert record["mib"] > 0 if positive else record["mib"] >= -0.5


def check_timings(results, repeats=2):
    for name, result in results.items():
        assert len(result["runs_s"]) == repeats, name
        assert result["median_s"] == statistics.median(result["runs_s"]) > 0
        assert result["images_per_s"] == pytest.approx(result["images"] / result["median_s"])


def check_comparisons(section):
    results = section["contenders"]
    for row in section["comparisons"]:
        one, other = results[row["contender"]], results[row["baseline"]]
        assert row["time_ratio"] > 0
        assert row["time_ratio"] == pytest.approx(one["median_s"] / other["median_s"])
        assert row["speedup"] == pytest.approx(other["median_s"] / one["median_s"])
        mibs = [r.get("peak_memory", {}).get("mib") for r in (one, other)]
        if None in mibs or mibs[1] == 0:
            assert row["memory_ratio"] is None
        else:
            assert row["memory_ratio"] == pytest.approx(mibs[0] / mibs[1])
        if row["goal"] is None:
            assert row["goal_met"] is None
            continue
        checks = [part.split(" ") for part in row["goal"].split(", ")]  # "time_ratio <= 1.1"
        values = [row[metric] for metric, _, _ in checks]
        if None in values:
            assert row["goal_met"] is None
        else:
            expected = all(
                value <= float(limit) if op == "<=" else value >= float(limit)
                for value, (_, op, limit) in zip(values, checks, strict=True)
            )
            assert row["goal_met"] is expected, row


def test_every_section_is_reported(tiny_run):
    code, _, results = tiny_run
    assert code == 0
    assert list(results["sections"]) == list(perf.SECTIONS)
    env = results["environment"]
    assert env["threads"] == 1 and env["device"] == "cpu"
    assert env["torch"] == str(torch.__version__)
    assert env["command"].startswith("python benchmarks/perf.py --model smp:DeepLabV3:resnet18")
    assert env["date"] and "commit" in env
    assert results["settings"]["size"] == [32, 48] and results["settings"]["steps"] == 2


def test_attack_section(tiny_run):
    section = tiny_run[2]["sections"]["attack"]
    assert set(section["contenders"]) == {
        "pgd",
        "region",
        "region_apgd",
        "region_both",
        "floor",
        "floor_channels_last",
        "argmax",
        "predicted_classes",
    }
    check_timings(section["contenders"])
    check_comparisons(section)
    for name, result in section["contenders"].items():
        # an argmax over 2 x 11 x 32 x 48 logits allocates under the counters' resolution
        check_memory(result["peak_memory"], positive=name not in ("argmax", "predicted_classes"))
    first = section["comparisons"][0]
    assert (first["contender"], first["baseline"]) == ("region", "pgd")
    assert first["goal"] == "time_ratio <= 1.1, memory_ratio <= 1.1"


def test_ranking_section(tiny_run):
    section = tiny_run[2]["sections"]["ranking"]
    assert set(section["contenders"]) == {
        "flip_official_loop",
        "flip",
        "flip_channels_last",
        "gradient",
        "forward_backward",
    }
    check_timings(section["contenders"])
    check_comparisons(section)
    assert section["flip_scores_match"] is True, section["flip_scores_max_abs_difference"]
    pairs = [(row["contender"], row["baseline"]) for row in section["comparisons"]]
    assert ("flip", "flip_official_loop") in pairs and ("gradient", "forward_backward") in pairs


def test_sweep_section(tiny_run):
    section = tiny_run[2]["sections"]["sweep"]
    check_timings(section["contenders"])
    check_comparisons(section)
    assert section["predictions_equal"] is True
    assert section["selections_with_different_predictions"] == 0
    selections = section["selections"]
    assert len(selections) == 42
    ks = sorted({s["k"] for s in selections})
    assert ks == [6, 13, 26, 52, 103, 205]  # 1 ... 40% of ResNet-18's 512 latent channels
    assert all(sum(s["k"] == k for s in selections) == 7 for k in ks)


def test_map_section(tiny_run):
    section = tiny_run[2]["sections"]["map"]
    assert set(section["contenders"]) == {"region", "map", "map_no_channels", "map_command"}
    check_timings(section["contenders"])
    check_comparisons(section)
    first = section["comparisons"][0]
    assert (first["contender"], first["baseline"], first["goal"]) == (
        "map",
        "region",
        "time_ratio <= 9.5",
    )
    assert first["goal_met"] == (first["time_ratio"] <= 9.5)
    command = section["comparisons"][-1]  # regionattack map's units against one call
    assert (command["contender"], command["baseline"], command["goal"]) == (
        "map_command",
        "map",
        "time_ratio <= 1.1",
    )


def test_scaling_section(tiny_run):
    rows = tiny_run[2]["sections"]["scaling"]["rows"]
    assert [(r["by"], r["size"], r["batch"]) for r in rows] == [
        ("size", [64, 96], 1),
        ("batch", [32, 48], 1),
        ("batch", [32, 48], 2),
    ]
    for row in rows:
        assert "skipped" not in row
        assert row["megapixels"] == pytest.approx(
            row["batch"] * row["size"][0] * row["size"][1] / 1e6
        )
        for name in ("forward", "step"):
            result = row[name]
            assert result["median_s"] > 0
            assert result["s_per_megapixel"] == pytest.approx(
                result["median_s"] / row["megapixels"]
            )
            check_memory(result["peak_memory"], positive=False)  # tiny calls: ~0 MiB above before
    check_memory(rows[0]["step"]["peak_memory"])  # 64x96: activations well above 64 KiB buffers


def test_markdown_is_written_next_to_the_json(tiny_run):
    _, out, results = tiny_run
    report = out.with_suffix(".md").read_text()
    for name in perf.SECTIONS:
        assert f"## {name}" in report
    assert results["environment"]["command"] in report
    assert "| region / pgd |" in report
    assert sorted(p.name for p in out.parent.iterdir()) == ["perf.json", "perf.md"]  # no temp files


def test_bad_sections_exit_with_code_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(["--sections", "attack,bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown section(s) 'bogus'" in err and "attack,ranking,sweep,map,scaling" in err


def test_bad_settings_exit_with_code_2(capsys):
    assert run_main([*TINY, "--repeats", "0"]) == 2
    assert "--repeats must be positive" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU memory probe reads /proc")
def test_memory_probe_reports_json(capsys):
    assert run_main([*TINY, "--memory-probe", "scaling:step"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    check_memory(record, positive=False)
    assert run_main([*TINY, "--memory-probe", "sweep:naive_loop"]) == 2


@pytest.fixture
def no_memory_probes(monkeypatch):
    """Skip the probe subprocess (tested above) where a test checks something else."""
    monkeypatch.setattr(
        perf_sections, "memory", lambda *_: {"mib": None, "reason": "not measured here"}
    )


def test_autocast_bf16_runs_on_cpu(tmp_path, no_memory_probes):
    out = tmp_path / "bf16.json"
    argv = [*TINY, "--autocast", "bf16", "--sections", "attack,sweep", "--out", str(out)]
    assert run_main(argv) == 0
    results = json.loads(out.read_text())
    assert results["settings"]["autocast"] == "bf16"
    check_comparisons(results["sections"]["attack"])
    assert results["sections"]["sweep"]["predictions_equal"] is True


def test_compile_keeps_the_hooks_working(tmp_path, no_memory_probes):
    """--compile with the "eager" backend: dynamo traces the blocks, the library's hooks still run.

    The default backend (inductor) also runs on this CPU machine but compiles for minutes, too long
    for the default test run; the compiled blocks are the same, only the code generation differs.
    """
    out = tmp_path / "compiled.json"
    argv = [
        *TINY,
        "--compile",
        "--compile-backend",
        "eager",
        "--sections",
        "sweep",
        "--out",
        str(out),
    ]
    assert run_main(argv) == 0
    results = json.loads(out.read_text())
    assert results["settings"]["compile"] == "eager"
    assert results["sections"]["sweep"]["predictions_equal"] is True
