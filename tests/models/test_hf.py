"""Hugging Face ``transformers`` models: a tiny SegFormer built from a config (no download)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import regionattack as ra
from regionattack.latent import default_layer, latent_of, model_logits
from tests.helpers import assert_untouched, snapshot

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


@pytest.fixture
def upernet() -> nn.Module:
    """UperNet on a four-stage ConvNeXt (8..64 channels), logits at input size."""
    torch.manual_seed(0)
    return ra.models.build_model(
        "hf:upernet-convnext", 3, backbone_depths=[1, 1, 1, 1],
        backbone_hidden_sizes=[8, 16, 32, 64], hidden_size=16, pool_scales=[1, 2],
    ).eval()  # fmt: skip


def test_build_model_makes_hugging_face_models_from_configs():
    segformer = ra.models.build_model("hf:segformer", 5, depths=[1, 1, 1, 1])
    assert type(segformer).__name__ == "SegformerForSemanticSegmentation"
    assert segformer.config.num_labels == 5 and list(segformer.config.depths) == [1, 1, 1, 1]
    assert list(segformer.config.hidden_sizes) == [32, 64, 160, 256]  # MiT-b0 by default
    upernet = ra.models.build_model("hf:upernet-convnext", 5, backbone_depths=[1, 1, 1, 1])
    assert list(upernet.config.backbone_config.depths) == [1, 1, 1, 1]
    assert upernet.auxiliary_head is None and upernet.config.num_labels == 5


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("hf:segfromer", {}, r"hf models are one of \['segformer'"),
        ("hf:segformer", {"hiden_sizes": [8]}, r"SegformerConfig has no field\(s\) \['hiden_sizes'\]"),
        ("hf:upernet-convnext", {"backbone_dpths": [1]}, r"no field\(s\) \['backbone_dpths'\]"),
        ("hf:upernet-convnext", {"hiden_size": 8}, r"UperNetConfig has no field\(s\) \['hiden_size'\]"),
    ],
)  # fmt: skip
def test_misspelt_hugging_face_names_and_options_are_refused(name, options, message):
    with pytest.raises(ValueError, match=message):
        ra.models.build_model(name, 3, **options)


def test_without_transformers_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'regionattack\[hf\]'"):
        ra.models.build_model("hf:segformer", 3)


def test_upernet_latent_is_the_last_normalised_convnext_stage(upernet):
    images = torch.rand(2, 3, 64, 64)
    assert default_layer(upernet) == "backbone.hidden_states_norms.stage4"
    latent = latent_of(upernet, images)
    assert tuple(latent.shape) == (2, 64, 2, 2)
    with torch.no_grad():  # the module's output is what the decoder receives last
        features = upernet.backbone(images).feature_maps[-1]
    assert torch.equal(latent, features)


def test_attacks_rankings_ablation_and_maps_run_on_upernet(upernet):
    images = torch.rand(2, 3, 64, 64)
    before = snapshot(upernet)
    adversarial = ra.RegionAttack(upernet, "left", steps=3, seed=0)(images)
    with torch.no_grad():
        clean = model_logits(upernet(images)).argmax(1)
        attacked = model_logits(upernet(adversarial)).argmax(1)
    assert not torch.equal(clean, attacked)
    ranking = ra.rank_channels(upernet, images, region="left")
    assert ranking.layer == "backbone.hidden_states_norms.stage4" and ranking.num_channels == 64
    with torch.no_grad(), ra.ablate_channels(upernet, ranking.top(16)):
        ablated = model_logits(upernet(images)).argmax(1)
    assert not torch.equal(ablated, clean)
    vmap = ra.vulnerability_map(upernet, images, grid=2, steps=1, k=4)
    assert torch.isfinite(vmap.channel_drop).all() and vmap.shape == (2, 2)
    assert_untouched(upernet, before)


def test_an_upernet_on_swin_says_its_latent_is_not_detected_and_maps_without_channels():
    backbone = transformers.SwinConfig(
        embed_dim=8, depths=[1, 1], num_heads=[1, 1], out_features=["stage1", "stage2"]
    )
    config = transformers.UperNetConfig(
        backbone_config=backbone, hidden_size=16, num_labels=3, use_auxiliary_head=False
    )
    torch.manual_seed(0)
    model = transformers.UperNetForSemanticSegmentation(config).eval()
    with pytest.raises(ValueError, match=r"UperNet on a SwinBackbone .* channels=False"):
        default_layer(model)
    vmap = ra.vulnerability_map(model, torch.rand(1, 3, 32, 32), grid=2, steps=1, channels=False)
    assert vmap.channel_drop is None and vmap.changed_inside.shape == (2, 2)
