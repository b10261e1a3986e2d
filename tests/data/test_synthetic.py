"""The synthetic street scenes: shapes, determinism, layout, and what makes them a position task."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from regionattack.data import (
    CLASSES,
    SyntheticStreets,
    make_batch,
    make_scene,
)

SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, POLE, CAR, PERSON = range(8)


@pytest.fixture(scope="module")
def batch():
    """64 synthetic scenes of the demo size (one batch for the statistical tests)."""
    return make_batch(64, size=(96, 128), seed=0)


def test_classes():
    assert CLASSES == ("sky", "building", "road", "sidewalk", "vegetation", "pole", "car", "person")


@pytest.mark.parametrize("size", [(96, 128), (33, 50), (16, 16), (7, 13), (1, 1)])
def test_make_scene_shapes_dtypes_and_ranges(size):
    image, label = make_scene(*size, torch.Generator().manual_seed(1))
    assert image.shape == (3, *size) and image.dtype == torch.float32
    assert label.shape == size and label.dtype == torch.int64
    assert image.min() >= 0 and image.max() <= 1 and torch.isfinite(image).all()
    assert label.min() >= 0 and label.max() < len(CLASSES)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_make_scene_any_size(h, w, seed):
    image, label = make_scene(h, w, torch.Generator().manual_seed(seed))
    assert image.shape == (3, h, w) and label.shape == (h, w)
    assert 0 <= image.min() <= image.max() <= 1
    assert 0 <= label.min() <= label.max() < len(CLASSES)


def test_make_scene_is_deterministic_and_uses_only_its_generator():
    state = torch.random.get_rng_state()
    torch.manual_seed(123)
    a = make_scene(48, 64, torch.Generator().manual_seed(7))
    torch.manual_seed(456)
    b = make_scene(48, 64, torch.Generator().manual_seed(7))
    c = make_scene(48, 64, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    torch.random.set_rng_state(state)
    before = torch.random.get_rng_state()
    make_scene(48, 64, torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), before), "global RNG was used"


def test_make_batch_shapes_and_determinism():
    images, labels = make_batch(5, size=(24, 40), seed=3)
    assert images.shape == (5, 3, 24, 40) and images.dtype == torch.float32
    assert labels.shape == (5, 24, 40) and labels.dtype == torch.int64
    again = make_batch(5, size=(24, 40), seed=3)
    assert torch.equal(images, again[0]) and torch.equal(labels, again[1])
    other = make_batch(5, size=(24, 40), seed=4)
    assert not torch.equal(labels, other[1])
    # images within a batch differ from each other
    assert all(not torch.equal(labels[0], labels[i]) for i in range(1, 5))


def test_dataset_items_match_make_batch_and_do_not_depend_on_length():
    size = (32, 48)
    images, labels = make_batch(70, size=size, seed=2)  # more than one rendering chunk
    data = SyntheticStreets(70, size=size, seed=2)
    assert len(data) == 70
    for i in (0, 1, 63, 64, 69):
        image, label = data[i]
        assert torch.equal(label, labels[i])
        torch.testing.assert_close(image, images[i], atol=1e-6, rtol=0)
    short = SyntheticStreets(3, size=size, seed=2)
    assert torch.equal(short[2][1], data[2][1])
    assert torch.equal(data[-1][1], data[69][1])
    assert not torch.equal(SyntheticStreets(3, size=size, seed=5)[2][1], data[2][1])


def test_layout_does_not_depend_on_the_size():
    big = make_batch(8, size=(96, 128), seed=1)[1]
    small = make_batch(8, size=(48, 64), seed=1)[1]
    assert (big[:, ::2, ::2] == small).float().mean() > 0.9


def test_dataset_works_with_a_dataloader():
    loader = torch.utils.data.DataLoader(SyntheticStreets(6, size=(16, 24)), batch_size=4)
    images, labels = next(iter(loader))
    assert images.shape == (4, 3, 16, 24) and labels.shape == (4, 16, 24)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: make_scene(0, 8, torch.Generator()), ValueError, "height must be positive"),
        (lambda: make_scene(8, -1, torch.Generator()), ValueError, "width must be positive"),
        (lambda: make_scene(8.0, 8, torch.Generator()), TypeError, "height must be an int"),
        (lambda: make_scene(8, 8, 0), TypeError, "generator must be a torch.Generator; got int"),
        (lambda: make_batch(0), ValueError, "num_images must be positive"),
        (lambda: make_batch(2, size=(96,)), ValueError, r"size must be \(height, width\)"),
        (lambda: make_batch(2, seed=-1), ValueError, "seed must be >= 0; got -1"),
        (lambda: make_batch(2, seed=1.5), TypeError, "seed must be an int; got float"),
        (lambda: SyntheticStreets(0), ValueError, "num_images must be positive"),
        (lambda: SyntheticStreets(2, size=(8, 0)), ValueError, "width must be positive"),
        (lambda: SyntheticStreets(2)[2], IndexError, r"index must be in \[-2, 2\); got 2"),
        (lambda: SyntheticStreets(2)[-3], IndexError, "got -3"),
        (lambda: SyntheticStreets(2)["0"], TypeError, "index must be an int"),
    ],
)
def test_synthetic_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_every_class_appears_in_a_batch(batch):
    _, labels = batch
    counts = torch.bincount(labels.flatten(), minlength=len(CLASSES))
    assert len(counts) == len(CLASSES)
    assert (counts > 0).all(), dict(zip(CLASSES, counts.tolist(), strict=True))
    # the large classes appear in every image
    for cls in (SKY, BUILDING, ROAD, SIDEWALK):
        assert all((labels[i] == cls).any() for i in range(len(labels))), CLASSES[cls]


def test_vertical_layout(batch):
    _, labels = batch
    height = labels.shape[1]
    rows = torch.arange(height, dtype=torch.float32).view(1, height, 1).expand_as(labels)
    mean_row = {c: rows[labels == c].mean().item() / height for c in range(len(CLASSES))}
    assert mean_row[SKY] < 0.3 < 0.7 < mean_row[ROAD]
    assert mean_row[SKY] < mean_row[BUILDING] < mean_row[SIDEWALK]
    assert not (labels[:, -1] == SKY).any(), "sky in the bottom row"
    assert not ((labels[:, 0] == ROAD) | (labels[:, 0] == SIDEWALK)).any(), "ground in the top row"
    for label in labels:  # the horizon (first road row) lies at 30-45 % of the height
        first_road_row = (label == ROAD).any(dim=1).nonzero()[0].item()
        assert 0.28 * height <= first_road_row <= 0.5 * height
    assert (labels[:, -1] == ROAD).float().mean() > 0.5, "road should fill the bottom row"


def test_left_right_asymmetry(batch):
    _, labels = batch
    half = labels.shape[-1] // 2
    left = torch.bincount(labels[..., :half].flatten(), minlength=len(CLASSES)).float()
    right = torch.bincount(labels[..., half:].flatten(), minlength=len(CLASSES)).float()
    assert left[CAR] > 2 * right[CAR], "cars drive mostly in the left lane"
    assert right[PERSON] > 2 * left[PERSON], "persons walk mostly on the right"
    assert right[VEGETATION] > 1.5 * left[VEGETATION], "vegetation is mostly on the right"
    assert left[BUILDING] > 1.5 * right[BUILDING], "buildings are taller on the left"
    assert right[SIDEWALK] > 1.2 * left[SIDEWALK], "the right sidewalk is wider"


def test_colour_alone_does_not_identify_the_class(batch):
    images, labels = batch
    pixels, classes = images.permute(0, 2, 3, 1).reshape(-1, 3), labels.flatten()
    means = torch.stack([pixels[classes == c].mean(dim=0) for c in range(len(CLASSES))])
    accuracy = (torch.cdist(pixels, means).argmin(dim=1) == classes).float().mean()
    assert accuracy < 0.6, f"nearest class colour already gets {accuracy:.0%} right"
    # road and sidewalk are both grey, close in colour
    assert (means[ROAD] - means[SIDEWALK]).abs().max() < 0.15


def test_images_are_textured_not_flat(batch):
    images, labels = batch
    for cls in (BUILDING, ROAD, VEGETATION):
        pixels = images.permute(0, 2, 3, 1)[labels == cls]
        assert pixels.std(dim=0).min() > 0.03, CLASSES[cls]
