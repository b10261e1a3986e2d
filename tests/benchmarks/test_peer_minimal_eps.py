"""benchmarks/peer_minimal_eps.py: ours beside adv-lib's minimal-norm attacks (adv-lib optional)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import pytest
import torch

from benchmarks import peer_minimal_eps


def test_noise_has_the_radius_of_each_image_and_none_where_not_broken():
    images = torch.full((3, 3, 8, 8), 0.5)
    radii = torch.tensor([2 / 255, 0.0, math.inf])
    noisy = peer_minimal_eps.noise_at(images, radii, seed=0)
    spread = (noisy - images).flatten(1).abs().amax(dim=1)
    assert 1.5 / 255 < float(spread[0]) <= 2 / 255 + 1e-7
    assert spread[1:].tolist() == [0.0, 0.0]


def test_without_adv_lib_the_script_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "adv_lib", None)
    monkeypatch.setitem(sys.modules, "adv_lib.attacks", None)
    argv = ["--checkpoint", "x.pt", "--root", str(tmp_path), "--out", str(tmp_path / "o.json")]
    assert peer_minimal_eps.main(argv) == 2
    assert "--no-build-isolation visdom" in capsys.readouterr().err


@pytest.mark.slow  # adv-lib compiles its L-inf prox with torch.compile on the first call
@pytest.mark.skipif(importlib.util.find_spec("adv_lib") is None, reason="adv-lib not installed")
def test_rows_for_every_cell_with_radii_and_outside_changes(camvid, checkpoint, tmp_path, capsys):
    out = tmp_path / "peers.json"
    argv = ["--checkpoint", str(checkpoint), "--root", str(camvid), "--images", "2",
            "--grid", "2", "--steps", "20", "--batch-size", "2", "--out", str(out)]  # fmt: skip
    assert peer_minimal_eps.main(argv) == 0
    record = json.loads(out.read_text())
    assert len(record["cells"]) == 4 and set(record["seconds"]) == {
        "RegionAttack",
        *peer_minimal_eps.PEERS,
    }
    for row in record["cells"]:
        for name in peer_minimal_eps.PEERS:
            assert 0 <= row[f"{name} broken"] <= 1
            if row[name] is not None:  # a found radius is a radius that broke the cell
                assert 0 < row[name] <= 1 and row[f"{name} changed outside"] is not None
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("| cell | RegionAttack | RegionAttack changed outside | ALMA prox |")
    assert header.endswith("| PDPGD changed outside | PDPGD noise changed outside |")
