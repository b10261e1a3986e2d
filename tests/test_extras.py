"""The core works without the optional packages; each feature that needs one names its extra.

Each check runs in a fresh interpreter where the extras' packages cannot be imported
(``sys.modules[name] = None`` makes ``import name`` raise ImportError), as after
``pip install regionattack`` without extras.
"""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # runs a script end to end (seconds to minutes)

BLOCKED = ("segmentation_models_pytorch", "matplotlib", "kornia", "transformers", "cospgd")


def run_without_extras(code: str) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in BLOCKED)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_core_runs_without_any_extra():
    result = run_without_extras(
        """
        import torch
        import regionattack as ra
        from regionattack.models import TinySegmenter

        model = TinySegmenter(num_classes=3).eval()
        images = torch.rand(2, 3, 16, 16)
        ranking = ra.rank_channels(model, images, region="left")
        with ra.ablate_channels(model, ranking.top(2)):
            model(images)
        adv = ra.RegionAttack(model, "left", steps=2, seed=0)(images)
        vmap = ra.vulnerability_map(model, images, grid=2, steps=1)
        print(adv.shape[0], len(vmap.rows()))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "4"]


MISSING = {  # what each extra's feature runs, in one interpreter without the extras
    "models": "from regionattack.models import build_model; build_model('smp:FPN:resnet18', 2)",
    "hf": "from regionattack.models import build_model; build_model('hf:segformer', 2)",
    "figures": "ra.vulnerability_map(TinySegmenter().eval(), x, grid=2, steps=1, channels=False)"
    ".plot()",
    "bench": "from regionattack.defenses import augshift_loss; augshift_loss(TinySegmenter(), x)",
}


def test_a_missing_extra_is_named():
    result = run_without_extras(
        f"""
        import torch, regionattack as ra
        from regionattack.models import TinySegmenter
        x = torch.rand(1, 3, 16, 16)
        for extra, code in {MISSING!r}.items():
            try:
                exec(code)
            except ImportError as error:
                print(extra, "|", error)
            else:
                print(extra, "| ran")
        """
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" | ", 1) for line in result.stdout.splitlines())
    assert list(lines) == list(MISSING)
    for extra, message in lines.items():
        assert f"regionattack[{extra}]" in message, (extra, message)


def test_the_command_line_names_the_missing_extra(tmp_path):
    result = run_without_extras(
        f"""
        import os
        os.environ["REGIONATTACK_CACHE_DIR"] = {str(tmp_path / "cache")!r}
        from regionattack.cli import main
        sys.exit(main(["demo", "--out", {str(tmp_path / "demo")!r}, "--quiet"]))
        """
    )
    assert result.returncode == 2, result.stderr
    assert "regionattack demo: error:" in result.stderr
    assert "regionattack[models]" in result.stderr
