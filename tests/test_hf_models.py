"""Hugging Face ``transformers`` models: a tiny SegFormer built from a config (no download)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import regionattack as ra
from regionattack.latent import default_layer, latent_of, model_logits

from conftest import assert_untouched, snapshot

transformers = pytest.importorskip("transformers", minversion="5.9")


@pytest.fixture
def segformer() -> nn.Module:
    """Two stages (8 and 16 channels), logits at 1/4 of the input."""
    config = transformers.SegformerConfig(
        num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
        hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 1],
        mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.SegformerForSemanticSegmentation(config).eval()


def test_logits_are_upsampled_to_the_input(segformer):
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        output = segformer(images)
    assert type(output).__name__ == "SemanticSegmenterOutput"
    assert tuple(output.logits.shape) == (2, 3, 8, 8)
    upsampled = model_logits(output, images.shape[-2:])
    expected = F.interpolate(output.logits, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.equal(upsampled, expected)
    assert torch.equal(model_logits(output), output.logits)  # no size: as the model gave them


def test_the_latent_is_the_last_encoder_stage(segformer):
    assert default_layer(segformer) == "segformer.stages.1"
    assert tuple(latent_of(segformer, torch.rand(2, 3, 32, 32)).shape) == (2, 16, 4, 4)
    wrapped = ra.with_normalization(segformer, [0.5] * 3, [0.25] * 3)
    assert default_layer(wrapped) == "segformer.stages.1"


def test_attacks_rankings_ablation_and_maps_run_on_segformer(segformer):
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():  # transformers registers its output-recording hooks on the first call
        segformer(images)
    before = snapshot(segformer)
    attack = ra.RegionAttack(segformer, "left", steps=3, seed=0)
    adversarial = attack(images)
    assert float((adversarial - images).abs().max()) <= 8 / 255 + 1e-6
    with torch.no_grad():
        clean = model_logits(segformer(images), (32, 32)).argmax(1)
        attacked = model_logits(segformer(adversarial), (32, 32)).argmax(1)
    assert clean.shape == (2, 32, 32) and not torch.equal(clean, attacked)
    ranking = ra.rank_channels(segformer, images, region="left")
    assert ranking.layer == "segformer.stages.1" and ranking.num_channels == 16
    with torch.no_grad(), ra.ablate_channels(segformer, ranking.top(4)):
        ablated = model_logits(segformer(images), (32, 32)).argmax(1)
    assert not torch.equal(ablated, clean)
    vmap = ra.vulnerability_map(segformer, images, grid=2, steps=1, k=2)
    assert torch.isfinite(vmap.channel_drop).all() and vmap.shape == (2, 2)
    assert_untouched(segformer, before)


def test_a_segformer_without_stages_gets_a_clear_error():
    class OldSegformer(nn.Module):  # transformers < 5.9: the encoder reshapes inside forward
        def __init__(self):
            super().__init__()
            self.segformer = nn.Module()
            self.segformer.encoder = nn.Linear(2, 2)
            self.decode_head = nn.Linear(2, 2)

    with pytest.raises(ValueError, match=r"transformers >= 5\.9"):
        default_layer(OldSegformer())
