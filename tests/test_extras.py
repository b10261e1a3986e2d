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


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        (
            "from regionattack.models import build_model; build_model('smp:FPN:resnet18', 2)",
            "models",
        ),
        ("from regionattack.models import build_model; build_model('hf:segformer', 2)", "hf"),
        (
            "import torch, regionattack as ra\n"
            "from regionattack.models import TinySegmenter\n"
            "ra.vulnerability_map(TinySegmenter().eval(), torch.rand(1, 3, 16, 16), grid=2,"
            " steps=1, channels=False).plot()",
            "figures",
        ),
        (
            "import torch\nfrom regionattack.defenses import augshift_loss\n"
            "from regionattack.models import TinySegmenter\n"
            "augshift_loss(TinySegmenter(), torch.rand(1, 3, 16, 16))",
            "bench",
        ),
    ],
    ids=["smp", "transformers", "matplotlib", "kornia"],
)
def test_a_missing_extra_is_named(code, extra):
    result = run_without_extras(code)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert f"regionattack[{extra}]" in result.stderr, result.stderr


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
