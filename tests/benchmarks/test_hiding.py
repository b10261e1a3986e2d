"""benchmarks/hiding.py on a tiny CamVid folder: rows, tables, seeds only where they matter, resume."""

from __future__ import annotations

import json

import pytest

from benchmarks import hiding

pytestmark = pytest.mark.slow  # runs a script end to end (seconds)

EVERY_CLASS = "+".join(str(i) for i in range(11))  # present in every image of a random model


def test_rows_tables_seeds_and_resume(camvid, checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "hiding.json"
    args = [
        "--checkpoint", str(checkpoint), "--root", str(camvid), "--images", "3",
        "--batch-size", "2", "--hide", EVERY_CLASS, "--hide", "sky", "--eps", "8/255",
        "--steps", "1", "--seeds", "0,1", "--variants", "Metzen,HideClasses max=1%",
        "--out", str(out), "--figure", str(tmp_path / "hiding.png"),
    ]  # fmt: skip
    hiding.main(args)
    assert (tmp_path / "hiding.png").stat().st_size > 5_000
    rows = json.loads(out.read_text())["rows"]
    # Metzen has no random start: one seed; HideClasses one per seed; for each class set
    assert sorted(k.split("/", 1)[1] for k in rows if k.startswith("sky/")) == [
        "HideClasses max=1%/8/1/0", "HideClasses max=1%/8/1/1", "Metzen/8/1/0",
    ]  # fmt: skip
    every = rows[f"{EVERY_CLASS}/HideClasses max=1%/8/1/0"]
    assert every["images"] == 3 and every["pixels"] == 3 * 32 * 48
    assert every["hidden_fraction"] == 0  # nothing else to paint with: nothing is hidden
    assert 0 <= every["budget_met_fraction"] <= 1
    assert rows["sky/Metzen/8/1/0"]["budget_met_fraction"] is None  # no budget
    printed = capsys.readouterr().out
    assert "**hide sky**" in printed and "| Metzen | 8/255 | 1 | 1 |" in printed

    def fail(*args, **kwargs):
        raise AssertionError("a finished unit was recomputed")

    monkeypatch.setattr(hiding, "measure_hiding", fail)
    hiding.main(args)
    assert json.loads(out.read_text())["rows"] == rows


def test_an_unknown_class_is_refused(camvid, checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        hiding.main(["--checkpoint", str(checkpoint), "--root", str(camvid), "--hide", "cat",
                     "--out", str(tmp_path / "h.json")])  # fmt: skip
    assert "unknown class 'cat'" in capsys.readouterr().err
