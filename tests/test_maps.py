"""regionattack.maps: vulnerability maps on a planted model, tiny models, and bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from regionattack.maps import MEASURES, map_cells, vulnerability_map
from regionattack.models import build_model
from tests.helpers import assert_untouched, snapshot

SIZE = 24  # a 3 x 3 grid of 8 x 8 cells


class Biases(nn.Module):
    """K latent channels: a fixed per-pixel bias each, plus (mean colour - 0.5) / K."""

    def __init__(self, biases: torch.Tensor):
        super().__init__()
        self.register_buffer("biases", biases)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        shift = (images.mean(dim=1, keepdim=True) - 0.5) / self.biases.shape[0]
        return self.biases[None] + shift


class Margins(nn.Module):
    """Two classes: class 0's logit is the sum of the channels, class 1's is 0."""

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        margin = latent.sum(dim=1, keepdim=True)
        return torch.cat([margin, torch.zeros_like(margin)], dim=1)


class PlantedSegmenter(nn.Module):
    """Predicts class 0 everywhere on grey images, by a margin of 1 logit, except in one cell.

    In ``fragile`` (a cell of the 3 x 3 grid) the margin is 0.02: any change of the mean colour
    by more than 0.02, or zeroing any one of the channels that carry it, flips the pixel. Each of
    the 20 channels carries 1/20 of the margin elsewhere (zeroing the top 5% = 1 channel leaves
    0.95); in the fragile cell channel 0 holds it down to 0.02.
    """

    def __init__(self, fragile: int, channels: int = 20):
        super().__init__()
        biases = torch.full((channels, SIZE, SIZE), 1.0 / channels)
        row, col = divmod(fragile, 3)
        cell = (slice(None), slice(8 * row, 8 * row + 8), slice(8 * col, 8 * col + 8))
        biases[0][cell[1:]] = 0.02 - (channels - 1) / channels
        self.encoder = Biases(biases)
        self.decoder = nn.Identity()
        self.segmentation_head = Margins()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.segmentation_head(self.decoder(self.encoder(images)))


def grey_images(n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return 0.5 + 0.002 * torch.rand(n, 3, SIZE, SIZE, generator=generator)


@pytest.mark.parametrize("fragile", [4, 6])
def test_the_planted_fragile_cell_comes_out_first_by_every_measure(fragile):
    model = PlantedSegmenter(fragile).eval()
    vmap = vulnerability_map(model, grey_images(3), grid=3, eps=8 / 255, steps=5)
    assert vmap.shape == (3, 3)
    for measure in ("changed_inside", "miou_drop", "channel_drop"):
        assert vmap.weakest(measure)[0] == fragile, measure
    values = {name: value.flatten() for name, value in vmap.measures().items()}
    others = [j for j in range(9) if j != fragile]
    assert values["changed_inside"][fragile] > 0.9
    assert values["changed_inside"][others].max() == 0
    assert values["miou_drop"][fragile] > 0.9 and values["channel_drop"][fragile] > 0.9
    assert values["channel_drop"][others].abs().max() == 0
    assert values["changed_outside"].max() == 0  # margins of 1 outside: nothing else moves


def test_minimal_eps_finds_the_planted_margin_and_counts_its_attacks(monkeypatch):
    from regionattack import maps

    model = PlantedSegmenter(4).eval()
    images = grey_images(2)
    calls = {"pairs": 0}
    run = maps._PairOutcome.__call__

    def counting(self, attack, image_ids, cell_ids):
        calls["pairs"] += len(image_ids)
        return run(self, attack, image_ids, cell_ids)

    monkeypatch.setattr(maps._PairOutcome, "__call__", counting)
    vmap = vulnerability_map(model, images, grid=3, steps=10, channels=False, minimal_eps=True,
                             eps_max=16 / 255)  # fmt: skip
    calls["pairs"] -= 2 * 9  # the map's own attacks at eps
    smallest = vmap.minimal_eps.flatten()
    # the fragile cell's margin is 0.02: a shift of the mean colour by 0.02 flips it
    assert 0.02 - 1e-3 <= float(smallest[4]) <= 0.02 + 0.5 / 255 + 1e-3
    assert torch.isinf(smallest[[0, 1, 2, 3, 5, 6, 7, 8]]).all()  # margins of 1 never break
    assert vmap.weakest("minimal_eps")[0] == 4
    # every pair is tried at eps_max; only the fragile cell's two pairs are bisected, 5 rounds
    assert calls["pairs"] == 2 * 9 + 2 * math.ceil(math.log2(16 / 0.5))
    record = vmap.to_dict()
    assert record["minimal_eps"][0][0] is None and record["minimal_eps"][1][1] > 0
    assert vmap.table().splitlines()[0].endswith("| minimal eps |")


def test_minimal_eps_is_the_smallest_breaking_eps_when_the_rest_is_quiet_there():
    """Breaking more needs more eps, and so does changing the rest: a cell that breaks quietly at
    0.02 and loudly from 0.06 on has minimal eps 0.02 (eps_max alone would be loud); a cell
    whose rest changes before it breaks has none."""
    from regionattack import maps

    class Outcome:  # cell 0 breaks at 0.02, its rest changes from 0.06; cell 1: 0.03 and 0.01
        images, batch_size = torch.zeros(2, 1), 4
        breaks, loud = (0.02, 0.03), (0.06, 0.01)

        def __call__(self, radius, image_ids, cell_ids):
            inside = torch.tensor([float(radius >= self.breaks[j]) for j in cell_ids.tolist()])
            outside = torch.tensor([0.05 * (radius >= self.loud[j]) for j in cell_ids.tolist()])
            counted = torch.ones(len(cell_ids))
            return None, (inside, outside), (counted, counted)

    smallest = maps._minimal_eps(lambda radius: radius, Outcome(), 2, [0, 1], 32 / 255, 0.5)
    assert 0.02 <= float(smallest[0]) <= 0.02 + maps.MINIMAL_EPS_RESOLUTION
    assert torch.isinf(smallest[1])
    unlimited = maps._minimal_eps(lambda radius: radius, Outcome(), 2, [0, 1], 32 / 255, 0.5, 1.0)
    assert 0.03 <= float(unlimited[1]) <= 0.03 + maps.MINIMAL_EPS_RESOLUTION  # breaks, loudly


def test_measures_are_those_of_the_attack_run_by_hand(tiny_segmenter, images):
    from regionattack import RegionAttack
    from regionattack.metrics import changed_fraction

    vmap = vulnerability_map(tiny_segmenter, images, grid=(1, 2), steps=3, channels=False,
                             batch_size=len(images))  # fmt: skip
    cells = map_cells((1, 2), (16, 16))[0]
    with torch.no_grad():
        clean = tiny_segmenter(images).argmax(1)
    for j, cell in enumerate(cells):
        attack = RegionAttack(tiny_segmenter, cell, eps=8 / 255, alpha=2 / 255, steps=3, seed=0)
        with torch.no_grad():
            predicted = tiny_segmenter(attack(images)).argmax(1)
        inside = [changed_fraction(clean[i : i + 1], predicted[i : i + 1], cell) for i in range(4)]
        assert float(vmap.changed_inside[0, j]) == pytest.approx(sum(inside) / 4, abs=1e-6)
    assert vmap.channel_drop is None and "channel_drop" not in vmap.to_dict()


@pytest.mark.parametrize("with_labels", [False, True])
def test_channel_drop_is_that_of_rank_channels_and_ablate_channels(
    tiny_segmenter, images, generator, with_labels
):
    import regionattack as ra
    from regionattack.metrics import ConfusionMatrix

    labels = torch.randint(0, 3, (4, 16, 16), generator=generator) if with_labels else None
    if with_labels:
        labels[:, :2] = 255
    vmap = vulnerability_map(tiny_segmenter, images, grid=2, labels=labels, steps=1, k=2,
                             batch_size=3)  # fmt: skip
    with torch.no_grad():
        clean = tiny_segmenter(images).argmax(1)
    targets = clean if labels is None else labels
    for j, cell in enumerate(map_cells(2, (16, 16))[0]):
        top = ra.rank_channels(tiny_segmenter, images, region=cell, labels=labels).top(2)
        with torch.no_grad(), ra.ablate_channels(tiny_segmenter, top):
            ablated = tiny_segmenter(images).argmax(1)
        before, after = ConfusionMatrix(3), ConfusionMatrix(3)
        before.update(clean, targets, cell[None])
        after.update(ablated, targets, cell[None])
        expected = before.miou() - after.miou()
        assert float(vmap.channel_drop.flatten()[j]) == pytest.approx(expected, abs=1e-6)


def test_user_masks_give_one_value_per_mask(tiny_segmenter, images):
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, :4, :4] = True
    masks[1, 8:, :] = True
    vmap = vulnerability_map(tiny_segmenter, images, grid=masks, steps=1, k=2)
    assert vmap.shape == (2,) and vmap.miou_drop.shape == (2,)
    assert vmap.table().splitlines()[2].startswith("| 0 |")


def test_model_is_untouched_also_when_it_raises(tiny_segmenter, images):
    before = snapshot(tiny_segmenter.train())
    vulnerability_map(tiny_segmenter, images, grid=2, steps=1)
    assert_untouched(tiny_segmenter, before)
    calls = {"n": 0}

    def fail_later(_module, _inputs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("boom")

    hook = tiny_segmenter.decoder.register_forward_pre_hook(fail_later)
    before = snapshot(tiny_segmenter)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            vulnerability_map(tiny_segmenter, images, grid=2, steps=2)
    finally:
        assert_untouched(tiny_segmenter, before)
        hook.remove()


def test_maps_on_smp_and_torchvision_models():
    torch.manual_seed(0)
    images = torch.rand(1, 3, 32, 32)
    for name in ("smp:FPN:resnet18", "torchvision:deeplabv3_mobilenet_v3_large"):
        model = build_model(name, 3).eval()
        vmap = vulnerability_map(model, images, grid=2, steps=1, batch_size=4)
        assert vmap.shape == (2, 2)
        assert set(vmap.measures()) == set(MEASURES) - {"minimal_eps"}
        for measure, values in vmap.measures().items():
            assert torch.isfinite(values).all(), (name, measure)


def test_table_dict_and_figure(tiny_segmenter, images, tmp_path):
    vmap = vulnerability_map(tiny_segmenter, images, grid=2, steps=1, k=2)
    record = json.loads(json.dumps(vmap.to_dict()))
    assert record["shape"] == [2, 2] and len(record["channel_drop"]) == 2
    assert record["settings"]["attack"] == "RegionAttack" and record["settings"]["k"] == 2
    lines = vmap.table().splitlines()
    assert lines[0] == "| cell | changed inside | changed outside | mIoU drop | channel drop |"
    assert len(lines) == 2 + 4 and lines[3].startswith("| (0, 1) |")
    figure = vmap.plot(images[0], tmp_path / "map.png")
    assert len(figure.axes) == 2 * 4  # a panel and a colour bar per measure
    assert (tmp_path / "map.png").stat().st_size > 5_000


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"grid": 40}, ValueError, "does not fit"),
        ({"grid": (2, 0)}, ValueError, "grid must be positive"),
        ({"grid": "3"}, TypeError, "grid must be"),
        ({"grid": torch.zeros(2, 16, 16)}, ValueError, "empty"),
        ({"attack": "FGSM"}, ValueError, "attack"),
        ({"eps": 8}, ValueError, "8/255"),
        ({"steps": 0}, ValueError, "steps"),
        ({"labels": torch.zeros(4, 8, 8, dtype=torch.long)}, ValueError, "labels"),
        ({"minimal_eps": True, "eps_max": 2.0}, ValueError, "eps_max"),
        ({"minimal_eps": True, "break_fraction": 0}, ValueError, "break_fraction"),
        ({"minimal_eps": True, "break_fraction": True}, TypeError, "break_fraction"),
        ({"minimal_eps": True, "max_outside": 1.5}, ValueError, "max_outside"),
        ({"minimal_eps": True, "max_outside": "1%"}, TypeError, "max_outside"),
    ],
)
def test_bad_input_gets_clear_errors(tiny_segmenter, images, options, error, match):
    with pytest.raises(error, match=match):
        vulnerability_map(tiny_segmenter, images, **{"grid": 2, "steps": 1, **options})


def test_weakest_refuses_what_is_not_a_fragility_measure(tiny_segmenter, images):
    vmap = vulnerability_map(tiny_segmenter, images, grid=2, steps=1, channels=False)
    with pytest.raises(ValueError, match="measure"):
        vmap.weakest("changed_outside")
    with pytest.raises(ValueError, match="measure"):
        vmap.weakest("channel_drop")  # not computed


def test_a_model_without_a_latent_needs_channels_false():
    model = nn.Conv2d(3, 2, 3, padding=1).eval()
    images = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="channels=False"):
        vulnerability_map(model, images, grid=2, steps=1)
    vmap = vulnerability_map(model, images, grid=2, steps=1, channels=False)
    assert vmap.channel_drop is None


def test_a_map_by_units_equals_the_map_of_each_cell_alone_and_resumes(tiny_segmenter, images):
    from regionattack.maps import Mapper

    mapper = Mapper(tiny_segmenter, images, grid=2, steps=2, batch_size=3)
    done: dict = {}
    vmap = mapper.by_units(lambda key, compute: done.setdefault(key, compute()))
    assert sorted(done) == ["cell/0", "cell/1", "cell/2", "cell/3", "channels"]
    for j, cell in enumerate(mapper.cells):
        alone = vulnerability_map(tiny_segmenter, images, grid=cell[None], steps=2, batch_size=3)
        for measure in ("changed_inside", "changed_outside", "miou_drop"):
            assert float(getattr(vmap, measure).flatten()[j]) == float(getattr(alone, measure))
    whole = vulnerability_map(tiny_segmenter, images, grid=2, steps=2, batch_size=3)
    assert torch.allclose(vmap.channel_drop, whole.channel_drop)  # all cells ranked at once

    def fail():
        raise AssertionError("a finished unit was computed again")

    again = mapper.by_units(lambda key, compute: done[key] if key in done else fail())
    assert torch.equal(again.miou_drop, vmap.miou_drop)


@pytest.mark.slow
def test_cli_map_writes_table_and_figure_resumes_and_refuses(
    camvid,  # noqa: F811
    checkpoint,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    from regionattack import cli

    out = tmp_path / "map"
    common = ["map", "--dataset", "camvid", "--root", str(camvid), "--checkpoint",
              str(checkpoint), "--images", "2", "--grid", "1x2", "--k", "2", "--out", str(out),
              "--quiet"]  # fmt: skip
    assert cli.main([*common, "--steps", "1"]) == 0
    record = json.loads((out / "map.json").read_text())
    assert sorted(record["units"]) == ["cell/0", "cell/1", "channels"]
    assert set(record["units"]["cell/0"]) == set(MEASURES) - {"minimal_eps", "channel_drop"}
    assert len(record["units"]["channels"]) == 2
    table = (out / "map.md").read_text()
    assert table.startswith("| cell | changed inside |") and "| (0, 1) |" in table
    assert (out / "map.png").stat().st_size > 5_000
    assert "weakest cells by mIoU drop" in capsys.readouterr().out

    def fail(*args, **kwargs):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr("regionattack.maps.Mapper.attack_rows", fail)
    monkeypatch.setattr("regionattack.maps.Mapper.channel_drops", fail)
    assert cli.main([*common, "--steps", "1"]) == 0  # resumed: every cell is in map.json
    assert cli.main([*common, "--steps", "2"]) == 2
    assert "another configuration (differs in: steps)" in capsys.readouterr().err
    monkeypatch.undo()
    bisected = tmp_path / "bisected"
    args = [*common[:-3], "--out", str(bisected), "--quiet", "--steps", "1", "--minimal-eps",
            "--eps-max", "2/255", "--no-channels"]  # fmt: skip
    assert cli.main(args) == 0
    units = json.loads((bisected / "map.json").read_text())["units"]
    assert all("minimal_eps" in units[f"cell/{j}"] for j in range(2))
    assert units["channels"] is None
    assert "| minimal eps |" in (bisected / "map.md").read_text()


@pytest.mark.parametrize(
    ("key", "stored"),
    [("cell/2", {}), ("cell/1", {"changed_inside": "x", "changed_outside": 0.0, "miou_drop": 0.0}),
     ("channels", [0.1])],
)  # fmt: skip
def test_a_damaged_stored_unit_is_refused_not_read_as_nan(key, stored):
    from regionattack.maps import Mapper
    from regionattack.models import TinySegmenter

    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mapper = Mapper(TinySegmenter(num_classes=3).eval(), images, grid=2, steps=1)
    done = {key: stored}
    with pytest.raises(ValueError, match=f"stored unit '{key}' is not what the map computes"):
        mapper.by_units(lambda name, compute: done[name] if name in done else compute())
