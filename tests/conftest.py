"""Shared fixtures: a device, a seeded generator, tiny models and a model-state snapshot helper."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import settings
from torch import nn

from regionattack.models import TinySegmenter

# Property tests draw the same examples on every run (no flaky CI); widen locally with
# --hypothesis-seed=N or HYPOTHESIS_PROFILE=random.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("random", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

CAMVID_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid"


@pytest.fixture
def device() -> torch.device:
    return torch.device("cpu")


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def tiny_task(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """16x16 blobs; class 0 = dark, 1 = bright on the left, 2 = bright on the right."""
    images = F.interpolate(torch.rand(n, 3, 4, 4, generator=generator), size=16, mode="bilinear")
    bright = images.mean(1) >= 0.5
    labels = bright.long()
    labels[:, :, 8:] *= 2
    return images, labels


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


def snapshot(model: nn.Module) -> dict:
    """Everything a public call must leave as it found it."""
    return {
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "requires_grad": {k: v.requires_grad for k, v in model.named_parameters()},
        "grads": {
            k: None if v.grad is None else v.grad.clone() for k, v in model.named_parameters()
        },
        "buffers": {k: v.detach().clone() for k, v in model.named_buffers()},
        "training": {k: m.training for k, m in model.named_modules()},
        "hooks": {
            k: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for k, m in model.named_modules()
        },
    }


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    for key in ("params", "buffers"):
        assert after[key].keys() == before[key].keys()
        for name, value in before[key].items():
            assert torch.equal(after[key][name], value), f"{key} {name} changed"
    for name, grad in before["grads"].items():
        now = after["grads"][name]
        assert (grad is None and now is None) or torch.equal(grad, now), f"grad of {name} changed"
