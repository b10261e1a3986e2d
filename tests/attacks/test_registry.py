"""The attack registry: names, options in brackets, the decorator, plug-ins found by entry point."""

import subprocess
import sys
import textwrap

import pytest
import torch

from regionattack.attacks import (
    ATTACKS,
    SegmentationAttack,
    UniformNoise,
    build_attack,
    parse_attack_name,
    register,
    unregister,
)
from regionattack.attacks.registry import ENTRY_POINT_GROUP

BUILT_IN = {
    "CosPGD",
    "PGD",
    "PositionChannelAttack",
    "RegionAttack",
    "RegionPGD",
    "SEA",
    "SegPGD",
    "UniformNoise",
}


def test_the_built_in_attacks_are_registered_and_the_table_is_read_only():
    assert set(ATTACKS) >= BUILT_IN
    with pytest.raises(TypeError):
        ATTACKS["Mine"] = UniformNoise  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PGD", ("PGD", {})),
        ("CosPGD[apgd]", ("CosPGD", {"optimizer": "apgd"})),
        ("RegionAttack[both+apgd]", ("RegionAttack", {"objective": "both", "optimizer": "apgd"})),
        ("SEA", ("SEA", {})),
        ("SEA[mce-bal+js]", ("SEA", {"losses": ("mce-bal", "js")})),
    ],
)
def test_attack_names_carry_their_options(name, expected):
    assert parse_attack_name(name) == expected


@pytest.mark.parametrize(
    "name", ["FGSM", "PGD[apgd]", "SEA[apgd]", "CosPGD[apgd+pgd]", "SEA[js+js]", "CosPGD[apgd"]
)
def test_attack_names_with_options_an_attack_does_not_take_are_refused(name):
    with pytest.raises(ValueError, match="unknown attack"):
        parse_attack_name(name)


def test_build_attack_refuses_option_typos_listing_the_options(tiny_segmenter):
    with pytest.raises(ValueError, match="takes no option 'outside_wieght'.*outside_weight"):
        build_attack("RegionAttack", tiny_segmenter, eps=4 / 255, steps=1, outside_wieght=2.0)
    with pytest.raises(ValueError, match="optimizer set both"):
        build_attack("CosPGD[apgd]", tiny_segmenter, eps=4 / 255, steps=1, optimizer="pgd")
    with pytest.raises(ValueError, match="did you mean 8/255"):
        build_attack("CosPGD", tiny_segmenter, eps=8, steps=1)


def test_every_attack_is_built_the_same_way_with_the_step_a_quarter_of_eps(tiny_segmenter):
    for name in BUILT_IN - {"PositionChannelAttack"}:
        attack = build_attack(name, tiny_segmenter, eps=4 / 255, steps=3, region="left", seed=1)
        assert (attack.eps, attack.steps, attack.seed) == (4 / 255, 3, 1), name
        assert attack.alpha == pytest.approx(1 / 255) or name in ("SEA", "UniformNoise"), name


class _Shifted(SegmentationAttack):
    """A test attack: a constant step of +eps (inside ``perturb_region`` rules aside)."""

    def __init__(self, model, region=None, *, eps=8 / 255, steps=1, seed=None):
        super().__init__("Shifted", model, eps=eps, steps=steps, seed=seed)
        self.region = region

    def forward(self, images, labels=None, region=None, clean=None):
        return (images + self.eps).clamp(0, 1)


@pytest.fixture
def shifted():
    register("TestShifted")(_Shifted)
    yield "TestShifted"
    unregister("TestShifted")


def test_a_registered_attack_is_usable_by_name_everywhere(shifted, tiny_segmenter, tmp_path):
    from torch.utils.data import TensorDataset

    from regionattack.bench.defense import evaluate_defense
    from regionattack.bench.runner import BenchConfig, run_experiments
    from regionattack.maps import vulnerability_map

    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = tiny_segmenter(images).argmax(1)
    attack = build_attack(shifted, tiny_segmenter, eps=2 / 255, steps=1)
    assert torch.allclose(attack(images), (images + 2 / 255).clamp(0, 1))
    vmap = vulnerability_map(tiny_segmenter, images[:2], grid=2, attack=shifted, channels=False)
    assert vmap.settings["attack"] == shifted
    report = evaluate_defense(
        {"m": tiny_segmenter}, (images, labels), attacks=[shifted], eps=(2 / 255,), steps=1,
        probe_images=6, probe_epochs=1, random_draws=1, progress=False,
    )  # fmt: skip
    assert set(report.models["m"]["attacks"]) == {f"{shifted}/2"}
    config = BenchConfig(
        dataset="tensors", root=".", out=str(tmp_path), attacks=(shifted,), eps=(2 / 255,),
        attack_steps=1, rankings=(), random_draws=0, fidelity_channels=0, progress=False,
    )  # fmt: skip
    results = run_experiments(config, tiny_segmenter, TensorDataset(images, labels))
    assert [row["attack"] for row in results["attacks"]] == [shifted]


def test_register_refuses_bad_names_taken_names_and_uncommon_signatures(shifted):
    with pytest.raises(ValueError, match="taken by"):
        register(shifted)(UniformNoise)
    with pytest.raises(ValueError, match="letters, digits"):
        register("Bad[name]")(_Shifted)

    class NoRegion:
        def __init__(self, model, *, eps, steps, seed):
            pass

    with pytest.raises(TypeError, match="lacks region"):
        register("NoRegion")(NoRegion)
    assert "NoRegion" not in ATTACKS


PLUGIN = '''
from regionattack.attacks import UniformNoise


class PlugNoise(UniformNoise):
    """Noise shipped by another package."""
'''

BROKEN = "raise ImportError('this plug-in is broken')\n"


def _install_plugin(site, name: str, module: str, source: str) -> None:
    """A minimal installed distribution with one entry point in ``regionattack.attacks``."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {module}:PlugNoise\n")


def test_plugins_are_found_through_the_entry_point_group_and_broken_ones_are_named(tmp_path):
    _install_plugin(tmp_path, "PlugNoise", "plug_noise", textwrap.dedent(PLUGIN))
    _install_plugin(tmp_path, "Broken", "broken_plugin", BROKEN)
    script = textwrap.dedent(
        f"""
        import sys, warnings
        sys.path.insert(0, {str(tmp_path)!r})
        from regionattack.attacks import ATTACKS, build_attack
        from regionattack.models import TinySegmenter
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = list(ATTACKS)
        attack = build_attack("PlugNoise", TinySegmenter(), eps=0.01, steps=1, seed=0)
        print(type(attack).__name__, "Broken" in names, "PlugNoise" in names)
        print(caught[0].message)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()[:2]
    assert first == "PlugNoise False True"
    assert "plug-in 'Broken'" in second and "this plug-in is broken" in second


@pytest.mark.slow
def test_a_plugin_attack_runs_from_the_bench_command(tmp_path, camvid, checkpoint):
    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site, "PlugNoise", "plug_noise", textwrap.dedent(PLUGIN))
    out = tmp_path / "out"
    command = [
        sys.executable, "-c", "import sys; from regionattack.cli import main; sys.exit(main())",
        "bench", "--dataset", "camvid", "--root", str(camvid), "--checkpoint", str(checkpoint),
        "--eps", "8/255", "--attacks", "PlugNoise,RegionAttack", "--attack-steps", "1",
        "--random-draws", "0", "--fidelity-channels", "0", "--out", str(out), "--quiet",
    ]  # fmt: skip
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    import json

    rows = json.loads((out / "results.json").read_text())["attacks"]
    assert [(row["attack"], row["region"]) for row in rows] == [
        ("PlugNoise", "image"),
        ("RegionAttack", "left"),
    ]
