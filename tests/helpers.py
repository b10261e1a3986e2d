"""What the tests share besides fixtures: paths, the tiny task, the model-state snapshot.

Imported as ``from tests.helpers import ...`` (tests/ is a package, so test files of the same
name in different folders do not collide).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
#: The real CamVid (SegNet layout), beside the project checkout; tests that need it skip without it.
CAMVID_ROOT = REPO.parent / "shared" / "data" / "camvid"
#: The image size of the tiny CamVid folder (fixture ``camvid``) and the options of the
#: DeepLabV3-ResNet18 saved for it (fixture ``checkpoint``).
SIZE = (32, 48)
OPTIONS = {"encoder_output_stride": 16, "decoder_channels": 16, "decoder_atrous_rates": [2, 4, 6]}


def tiny_task(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """16x16 blobs; class 0 = dark, 1 = bright on the left, 2 = bright on the right."""
    images = F.interpolate(torch.rand(n, 3, 4, 4, generator=generator), size=16, mode="bilinear")
    bright = images.mean(1) >= 0.5
    labels = bright.long()
    labels[:, :, 8:] *= 2
    return images, labels


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


def reference_pgd(model, images, labels, scaled_loss, *, steps, targeted, eps=8 / 255):
    """Whole-image PGD with the cospgd package's step (``cospgd.functions.step_inf``).

    ``scaled_loss(logits, labels, pixel_losses, step)`` is the reference's weighting of the
    per-pixel cross-entropy (its ``cospgd_scale`` or ``segpgd_scale``); step size eps / 4, no
    random start, as the library's attacks with ``random_start=False``.
    """
    reference = pytest.importorskip("cospgd", reason="cospgd is in the dev extras").functions
    adv = images.clone()
    for step in range(steps):
        adv.requires_grad_(True)
        logits = model(adv)
        loss = scaled_loss(logits, labels, F.cross_entropy(logits, labels, reduction="none"), step)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = reference.step_inf(adv, eps, grad, images, eps / 4, targeted)
    return adv
