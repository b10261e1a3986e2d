import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from regionattack.metrics import (
    ConfusionMatrix,
    RegionMIoU,
    changed_fraction,
    region_miou,
    region_specificity,
)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), classes=st.integers(2, 5))
def test_confusion_matrix_matches_a_direct_count(seed, classes):
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, classes, (3, 5, 6), generator=g)
    targets[0, 0] = 255
    preds = torch.randint(0, classes, (3, 5, 6), generator=g)
    cm = ConfusionMatrix(classes)
    cm.update(preds[:2], targets[:2])
    cm.update(preds[2:], targets[2:])
    keep = targets != 255
    ious = []
    for c in range(classes):
        inter = ((preds == c) & (targets == c) & keep).sum().item()
        union = (((preds == c) | (targets == c)) & keep).sum().item()
        if union:
            ious.append(inter / union)
    assert math.isclose(cm.miou(), sum(ious) / len(ious), rel_tol=1e-6)
    assert math.isclose(
        cm.pixel_accuracy(), ((preds == targets) & keep).sum().item() / keep.sum().item()
    )


def test_region_miou_inside_outside():
    targets = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 255]]])
    preds = torch.tensor([[[0, 0, 0, 0], [0, 0, 1, 0]]])
    result = region_miou(preds, targets, "left", num_classes=2)
    assert result.inside == 1.0
    assert math.isclose(result.outside, (0 + 1 / 3) / 2, rel_tol=1e-6)
    with pytest.raises(ValueError, match="class ids"):
        region_miou(preds, targets + 5 * (targets != 255), "left", num_classes=2)


def test_changed_fraction_and_specificity():
    clean = torch.zeros(1, 2, 4, dtype=torch.long)
    adv = clean.clone()
    adv[0, :, :2] = 1
    assert changed_fraction(clean, adv, "left") == 1.0
    assert changed_fraction(clean, adv, "right") == 0.0
    targets = torch.full_like(clean, 255)
    assert math.isnan(changed_fraction(clean, adv, targets=targets))
    assert region_specificity(RegionMIoU(0.8, 0.8, 0.8), RegionMIoU(0.5, 0.3, 0.8)) == 500.0
    assert region_specificity(RegionMIoU(0.8, 0.8, 0.8), RegionMIoU(0.5, 0.4, 0.6)) == 2.0


def test_confusion_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        ConfusionMatrix(2).update(
            torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)
        )


def test_masked_confusions_with_fixed_and_per_batch_masks_agree_with_region_miou():
    from regionattack.metrics import MaskedConfusions
    from regionattack.regions import named

    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 3, (4, 6, 8), generator=g)
    preds = torch.randint(0, 3, (4, 6, 8), generator=g)
    left = named("left", (6, 8))
    fixed = MaskedConfusions(3, {"left": left})
    per_batch = MaskedConfusions(3, ["left"])
    for part in (slice(0, 2), slice(2, 4)):
        fixed.update(preds[part], targets[part])
        per_batch.update(preds[part], targets[part], {"left": left[None]})
    expected = region_miou(preds, targets, "left", 3)
    assert fixed.region("left") == per_batch.region("left") == expected
    assert fixed.mious()["not-left"] == pytest.approx(expected.outside)
    with pytest.raises(ValueError, match="given with each batch"):
        per_batch.update(preds, targets)
