"""benchmarks/region_strength.py on a tiny CamVid folder: rows, table, figure, resume, refusal."""

from __future__ import annotations

import json
import sys

import pytest

from benchmarks import region_strength

pytestmark = pytest.mark.slow  # runs a script end to end (seconds to minutes)


def run(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["region_strength", *args])
    region_strength.main()


def test_rows_table_figure_and_resume(camvid, checkpoint, tmp_path, monkeypatch, capsys):  # noqa: F811
    out, figure = tmp_path / "strength.json", tmp_path / "strength.png"
    args = [
        "--checkpoint", str(checkpoint), "--root", str(camvid), "--images", "3",
        "--batch-size", "2", "--eps", "4/255,8/255", "--steps", "2", "--seeds", "0,1",
        "--variants", "UniformNoise,RegionAttack ow=1", "--out", str(out),
        "--figure", str(figure),
    ]  # fmt: skip
    run(monkeypatch, *args)
    record = json.loads(out.read_text())
    assert len(record["rows"]) == 2 * 2 * 2  # variants x radii x seeds
    row = record["rows"]["RegionAttack ow=1/8/2/1"]
    assert row["images"] == 3 and row["seed"] == 1 and row["eps"] == pytest.approx(8 / 255)
    assert 0 <= row["changed_outside"] <= 1 and 0 <= row["changed_inside"] <= 1
    assert record["environment"]["command"] == " ".join(["region_strength", *args])
    printed = capsys.readouterr().out
    assert "| RegionAttack ow=1 | 8/255 | 2 | 2 |" in printed
    assert figure.stat().st_size > 10_000

    def fail(*args, **kwargs):
        raise AssertionError("a finished unit was recomputed")

    monkeypatch.setattr(region_strength, "run_attack", fail)
    run(monkeypatch, *args)  # everything is in the file: nothing runs
    assert json.loads(out.read_text())["rows"] == record["rows"]


def test_other_images_are_refused(camvid, checkpoint, tmp_path, monkeypatch, capsys):  # noqa: F811
    out = tmp_path / "strength.json"
    common = ["--checkpoint", str(checkpoint), "--root", str(camvid), "--steps", "1"]
    run(monkeypatch, *common, "--images", "2", "--variants", "UniformNoise", "--out", str(out))
    with pytest.raises(SystemExit) as exit_info:
        run(monkeypatch, *common, "--images", "3", "--variants", "UniformNoise", "--out", str(out))
    assert exit_info.value.code == 2
    assert "differs in: ['data']" in capsys.readouterr().err


def test_unknown_variants_are_refused(camvid, checkpoint, tmp_path, monkeypatch, capsys):  # noqa: F811
    with pytest.raises(SystemExit):
        run(monkeypatch, "--checkpoint", str(checkpoint), "--root", str(camvid),
            "--variants", "FGSM", "--out", str(tmp_path / "x.json"))  # fmt: skip
    assert "unknown variants ['FGSM']" in capsys.readouterr().err
