"""regionattack demo: figures, resuming, the vulnerability map, bad arguments."""

import json

import pytest

from regionattack.cli import main


@pytest.mark.slow
def test_demo_writes_figures_and_resumes(synthetic_demo, capsys, tmp_path):
    for figure in ("ablation.png", "attacks.png", "examples.png"):
        assert (synthetic_demo["out"] / figure).stat().st_size > 10_000, figure
    assert not synthetic_demo["meta"]["model"]["cached"]
    assert main(["demo", "--out", str(tmp_path), "--eval-images", "8", "--attack-images", "2"]) == 0
    printed = capsys.readouterr().out
    assert "(cached:" in printed and "timings (s)" in printed
    assert json.loads((tmp_path / "results.json").read_text())["meta"]["model"]["cached"]


@pytest.mark.slow
def test_demo_shows_a_vulnerability_map_and_reads_it_back(synthetic_demo, capsys, tmp_path):
    assert (synthetic_demo["out"] / "map.png").stat().st_size > 10_000
    stored = json.loads((synthetic_demo["out"] / "map.json").read_text())
    assert stored["fingerprint"]["grid"] == [3, 3] and stored["fingerprint"]["images"] == 16
    rows = stored["units"]["map"]["rows"]
    assert len(rows) == 9 and {"changed_inside", "miou_drop", "channel_drop"} <= set(rows[0])
    table = (synthetic_demo["out"] / "map.md").read_text()
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
    assert main([*command, "--map-grid", "0", "--quiet"]) == 0  # no map: none shown or written
    assert "Where can it be broken?" not in capsys.readouterr().out
    assert (tmp_path / "map.json").read_bytes() == first


def test_demo_rejects_camvid_without_root(capsys):
    assert main(["demo", "--data", "camvid"]) == 2
    assert "--root" in capsys.readouterr().err
