"""Shared fixtures: a seeded generator, tiny models, a tiny CamVid folder and checkpoint, the demos."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import settings
from PIL import Image
from torch import nn

from regionattack.cli import main
from regionattack.demo import DemoConfig, run_demo
from regionattack.models import TinySegmenter, build_model, save_checkpoint
from tests.helpers import CAMVID_ROOT, OPTIONS, SIZE, tiny_task

# Property tests draw the same examples on every run (no flaky CI); widen locally with
# --hypothesis-seed=N or HYPOTHESIS_PROFILE=random.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("random", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture
def device() -> torch.device:
    return torch.device("cpu")


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def _tiny_weights() -> dict:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = TinySegmenter(num_classes=3, latent_channels=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(120):
        images, labels = tiny_task(16, generator)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def tiny_segmenter(_tiny_weights) -> nn.Module:
    """A TinySegmenter trained for ~2 s on :func:`tiny_task` (>90% pixel accuracy), in eval mode."""
    model = TinySegmenter(num_classes=3, latent_channels=8)
    model.load_state_dict(_tiny_weights)
    return model.eval()


@pytest.fixture
def images(generator) -> torch.Tensor:
    return torch.rand(4, 3, 16, 16, generator=generator)


@pytest.fixture(scope="module")
def camvid(tmp_path_factory) -> Path:
    """Six 32x48 CamVid images in the SegNet layout (.jpg images, PNG labels with void = 11)."""
    root = tmp_path_factory.mktemp("camvid")
    rng = np.random.default_rng(0)
    (root / "val").mkdir()
    (root / "valannot").mkdir()
    for i in range(6):
        image = rng.integers(0, 256, (SIZE[0], SIZE[1], 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "val" / f"frame{i:02d}.jpg")
        label = np.zeros(SIZE, np.uint8)
        label[:, SIZE[1] // 2 :] = 3  # road on the right, sky on the left
        label[:4] = 11  # void band
        label[10:20, 5:15] = 8
        Image.fromarray(label).save(root / "valannot" / f"frame{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised DeepLabV3-ResNet18 saved as benchmarks/train.py saves it."""
    torch.manual_seed(0)
    model = build_model("smp:DeepLabV3:resnet18", 11, **OPTIONS)
    path = tmp_path_factory.mktemp("checkpoint") / "model.pt"
    meta = {
        "architecture": "smp:DeepLabV3:resnet18",
        "options": OPTIONS,
        "classes": [str(i) for i in range(11)],
        "size": list(SIZE),
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    save_checkpoint(path, model, meta)
    return path


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """A fresh model cache for the demos (REGIONATTACK_CACHE_DIR) for the whole session."""
    path = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("REGIONATTACK_CACHE_DIR")
    os.environ["REGIONATTACK_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        del os.environ["REGIONATTACK_CACHE_DIR"]
    else:
        os.environ["REGIONATTACK_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def synthetic_demo(demo_cache, tmp_path_factory):
    """``regionattack demo`` run once from scratch: its results.json and output folder ("out")."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "results.json").read_text()) | {"out": out}


@pytest.fixture(scope="session")
def camvid_demo(demo_cache, tmp_path_factory):
    """The CamVid demo on the real data (skipped without it): its results."""
    if not (CAMVID_ROOT / "train").is_dir():
        pytest.skip(f"CamVid not found at {CAMVID_ROOT}")
    config = DemoConfig(
        data="camvid", root=str(CAMVID_ROOT), train_images=367, eval_images=101, progress=False
    )
    return run_demo(config, tmp_path_factory.mktemp("camvid"))
