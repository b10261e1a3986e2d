"""benchmarks/map_summary.py on maps made by ``regionattack map`` on a tiny CamVid folder."""

from __future__ import annotations

import json
import sys

import pytest

from benchmarks import map_summary
from regionattack import cli

pytestmark = pytest.mark.slow  # runs a script end to end (seconds to minutes)


def make_map(camvid, checkpoint, out, *extra):  # noqa: F811
    args = ["map", "--dataset", "camvid", "--root", str(camvid), "--checkpoint",
            str(checkpoint), "--images", "2", "--grid", "1x2", "--steps", "1", "--k", "2",
            "--out", str(out), "--quiet", *extra]  # fmt: skip
    assert cli.main(args) == 0
    return out


def test_summary_over_seeds(camvid, checkpoint, tmp_path, monkeypatch, capsys):  # noqa: F811
    folders = [
        make_map(camvid, checkpoint, tmp_path / f"s{seed}", "--seed", str(seed)) for seed in (0, 1)
    ]
    maps = [map_summary.load_map(folder) for folder in folders]
    summary = map_summary.summarize(maps)
    assert len(summary["cells"]) == 2 and sorted(summary["weakest"]) == [0, 1]
    first = [m["rows"][0]["changed_inside"] for m in maps]
    assert summary["cells"][0]["changed_inside"] == pytest.approx(sum(first) / 2)
    assert [row["seed"] for row in summary["correlations"]] == [0, 1]
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["map_summary", *map(str, folders)])
    map_summary.main()
    printed = capsys.readouterr().out
    assert printed.startswith("| cell | changed inside |") and "Spearman over cells" in printed


def test_other_settings_and_unfinished_maps_are_refused(camvid, checkpoint, tmp_path):  # noqa: F811
    one = map_summary.load_map(make_map(camvid, checkpoint, tmp_path / "a"))
    other = map_summary.load_map(make_map(camvid, checkpoint, tmp_path / "b", "--eps", "4/255"))
    with pytest.raises(ValueError, match="differ in more than the seed"):
        map_summary.summarize([one, other])
    record = json.loads((tmp_path / "a" / "map.json").read_text())
    del record["units"]["cell/1"]
    (tmp_path / "a" / "map.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"cells \[1\] are not finished"):
        map_summary.load_map(tmp_path / "a")
