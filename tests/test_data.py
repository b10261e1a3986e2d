from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from regionattack.data import (
    CAMVID_CLASSES,
    CAMVID_VOID,
    CLASSES,
    CamVid,
    SyntheticStreets,
    camvid_pairs,
    load_camvid,
    make_batch,
    make_scene,
)

REAL_CAMVID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid"
SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, POLE, CAR, PERSON = range(8)


# --------------------------------------------------------------------------------------------
# Synthetic streets


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


# --------------------------------------------------------------------------------------------
# CamVid


def _save_image(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array.astype(np.uint8), mode="RGB")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=95, subsampling=0)
    else:
        image.save(path)


def _save_label(path: Path, array: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode="L").convert(mode).save(path)


def _scene_label(height: int, width: int, shift: int) -> np.ndarray:
    """Left half class ``shift``, right half class 8, a void (11) band at the bottom."""
    label = np.full((height, width), 8, np.uint8)
    label[:, : width // 2] = shift
    label[-2:] = CAMVID_VOID
    return label


@pytest.fixture
def camvid_root(tmp_path):
    """A tiny CamVid tree: train has 2 JPEG images and 1 PNG image, val 1 PNG, 8x12 pixels."""
    root = tmp_path / "camvid"
    colours = {
        "0001TP_000010": (250, 10, 10),
        "0001TP_000020": (10, 250, 10),
        "Seq05_0001": (10, 10, 250),
    }
    suffixes = {"0001TP_000010": ".jpg", "0001TP_000020": ".png", "Seq05_0001": ".jpg"}
    for shift, (stem, colour) in enumerate(colours.items()):
        _save_image(root / "train" / f"{stem}{suffixes[stem]}", np.full((8, 12, 3), colour))
        _save_label(root / "trainannot" / f"{stem}.png", _scene_label(8, 12, shift))
    _save_image(root / "val" / "0016E5_00390.png", np.full((8, 12, 3), 128))
    _save_label(root / "valannot" / "0016E5_00390.png", _scene_label(8, 12, 5))
    _save_label(root / "valannot" / "unused_extra.png", _scene_label(8, 12, 5))  # ignored
    return root


def test_camvid_constants():
    assert len(CAMVID_CLASSES) == 11 and CAMVID_VOID == 11
    assert CAMVID_CLASSES[0] == "sky" and CAMVID_CLASSES[3] == "road"
    assert CAMVID_CLASSES[8] == "car" and CAMVID_CLASSES[10] == "bicyclist"


def test_camvid_pairs_by_stem_in_sorted_order_with_both_extensions(camvid_root):
    pairs = camvid_pairs(camvid_root, "train")
    assert [image.name for image, _ in pairs] == [
        "0001TP_000010.jpg",
        "0001TP_000020.png",
        "Seq05_0001.jpg",
    ]
    assert all(
        label.parent.name == "trainannot" and label.stem == image.stem for image, label in pairs
    )
    assert [image.name for image, _ in camvid_pairs(camvid_root, "val")] == ["0016E5_00390.png"]


def test_camvid_items(camvid_root):
    data = CamVid(camvid_root, "train")
    assert len(data) == 3 and data.classes == CAMVID_CLASSES
    expected_colours = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    for i, colour in enumerate(expected_colours):
        image, label = data[i]
        assert image.shape == (3, 8, 12) and image.dtype == torch.float32
        assert label.shape == (8, 12) and label.dtype == torch.int64
        assert 0 <= image.min() and image.max() <= 1
        mean = image.mean(dim=(1, 2)) * 255
        torch.testing.assert_close(mean, torch.tensor(colour, dtype=torch.float32), atol=4, rtol=0)
        assert (label[:-2, :6] == i).all() and (label[:-2, 6:] == 8).all()
        assert (label[-2:] == 255).all(), "void (11) must map to 255"
        assert not (label == CAMVID_VOID).any()


def test_camvid_png_is_lossless(camvid_root):
    image, _ = CamVid(camvid_root, "val")[0]
    assert torch.equal(image, torch.full((3, 8, 12), 128 / 255))


def test_camvid_resize_nearest_labels_and_antialiased_images(tmp_path):
    root = tmp_path / "camvid"
    checker = (np.indices((32, 48)).sum(axis=0) % 2 * 255).astype(np.uint8)
    _save_image(root / "test" / "a.png", np.stack([checker] * 3, axis=-1))
    label = np.zeros((32, 48), np.uint8)
    label[:, 24:] = 7
    label[:16] = CAMVID_VOID
    _save_label(root / "testannot" / "a.png", label)
    image, resized = CamVid(root, "test", size=(8, 12))[0]
    assert image.shape == (3, 8, 12) and resized.shape == (8, 12)
    # a 1-pixel checkerboard shrunk 4x averages to mid-grey only with antialiasing
    torch.testing.assert_close(image, torch.full_like(image, 0.5), atol=0.03, rtol=0)
    assert set(resized.unique().tolist()) == {0, 7, 255}, "nearest neighbour creates no new ids"
    assert (
        (resized[:4] == 255).all() and (resized[4:, :6] == 0).all() and (resized[4:, 6:] == 7).all()
    )


def test_camvid_upsizing_and_non_square_sizes(camvid_root):
    image, label = CamVid(camvid_root, "train", size=(20, 10))[1]
    assert image.shape == (3, 20, 10) and label.shape == (20, 10)
    assert set(label.unique().tolist()) <= {1, 8, 255}


def test_camvid_max_images_and_load_camvid(camvid_root):
    assert len(CamVid(camvid_root, "train", max_images=2)) == 2
    assert len(CamVid(camvid_root, "train", max_images=10)) == 3
    images, labels = load_camvid(camvid_root, "train", size=(4, 6), max_images=2)
    assert images.shape == (2, 3, 4, 6) and images.dtype == torch.float32
    assert labels.shape == (2, 4, 6) and labels.dtype == torch.int64
    full_images, full_labels = load_camvid(camvid_root, "train")
    assert full_images.shape == (3, 3, 8, 12)
    for i in range(3):
        item = CamVid(camvid_root, "train")[i]
        assert torch.equal(full_images[i], item[0]) and torch.equal(full_labels[i], item[1])


def test_camvid_palette_labels_are_accepted(tmp_path):
    root = tmp_path / "camvid"
    _save_image(root / "val" / "a.jpg", np.zeros((8, 12, 3)))
    _save_label(root / "valannot" / "a.png", _scene_label(8, 12, 2), mode="P")
    _, label = CamVid(root, "val")[0]
    assert set(label.unique().tolist()) == {2, 8, 255}


def test_camvid_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="CamVid root folder not found: .*nowhere"):
        CamVid(tmp_path / "nowhere")


def test_camvid_missing_folders(camvid_root):
    with pytest.raises(FileNotFoundError, match="image folder not found: .*test"):
        CamVid(camvid_root, "test")
    (camvid_root / "test").mkdir()
    with pytest.raises(FileNotFoundError, match="label folder not found: .*testannot"):
        load_camvid(camvid_root, "test")


def test_camvid_unknown_split(camvid_root):
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val', 'test'\]"):
        CamVid(camvid_root, "training")


def test_camvid_image_without_label(camvid_root):
    _save_image(camvid_root / "train" / "lonely.jpg", np.zeros((8, 12, 3)))
    with pytest.raises(ValueError, match=r"1 image\(s\) in .* have no label .*: lonely\.jpg"):
        CamVid(camvid_root, "train")


def test_camvid_empty_split(camvid_root):
    (camvid_root / "test").mkdir()
    (camvid_root / "testannot").mkdir()
    (camvid_root / "test" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="no images .* found in"):
        CamVid(camvid_root, "test")


def test_camvid_duplicate_stems(camvid_root):
    _save_image(camvid_root / "train" / "0001TP_000010.png", np.zeros((8, 12, 3)))
    with pytest.raises(ValueError, match="share the stem '0001TP_000010'"):
        CamVid(camvid_root, "train")


@pytest.mark.parametrize(
    "label, match",
    [
        (np.full((8, 12), 12, np.uint8), "holds value 12"),
        (np.zeros((6, 12), np.uint8), r"label .* is 12x6 \(WxH\) but its image is 12x8"),
    ],
)
def test_camvid_bad_label_values_and_sizes(tmp_path, label, match):
    root = tmp_path / "camvid"
    _save_image(root / "val" / "a.png", np.zeros((8, 12, 3)))
    _save_label(root / "valannot" / "a.png", label)
    data = CamVid(root, "val")
    with pytest.raises(ValueError, match=match):
        data[0]


def test_camvid_rgb_label_is_rejected(tmp_path):
    root = tmp_path / "camvid"
    _save_image(root / "val" / "a.png", np.zeros((8, 12, 3)))
    _save_image(root / "valannot" / "a.png", np.zeros((8, 12, 3)))
    with pytest.raises(ValueError, match="single-channel PNG .* got mode RGB"):
        CamVid(root, "val")[0]


def test_load_camvid_needs_a_size_for_mixed_sizes(camvid_root):
    _save_image(camvid_root / "val" / "big.png", np.zeros((16, 12, 3)))
    _save_label(camvid_root / "valannot" / "big.png", np.zeros((16, 12)))
    with pytest.raises(ValueError, match=r"different sizes .* pass size=\(H, W\)"):
        load_camvid(camvid_root, "val")
    images, _ = load_camvid(camvid_root, "val", size=(8, 12))
    assert images.shape == (2, 3, 8, 12)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"size": (8,)}, ValueError, r"size must be None or \(height, width\)"),
        ({"size": (8, 0)}, ValueError, "width must be positive"),
        ({"max_images": 0}, ValueError, "max_images must be positive"),
        ({"max_images": 1.5}, TypeError, "max_images must be an int"),
    ],
)
def test_camvid_argument_errors(camvid_root, kwargs, error, match):
    with pytest.raises(error, match=match):
        CamVid(camvid_root, "train", **kwargs)


@pytest.mark.slow
def test_real_camvid():
    if not REAL_CAMVID.is_dir():
        pytest.skip(f"CamVid not found at {REAL_CAMVID}")
    assert len(camvid_pairs(REAL_CAMVID, "train")) == 367
    assert len(CamVid(REAL_CAMVID, "val")) == 101
    image, label = CamVid(REAL_CAMVID, "train")[0]
    assert image.shape == (3, 360, 480) and label.shape == (360, 480)
    images, labels = load_camvid(REAL_CAMVID, "train", size=(96, 128), max_images=24)
    assert images.shape == (24, 3, 96, 128) and labels.shape == (24, 96, 128)
    assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.1
    values = set(labels.unique().tolist())
    assert values <= set(range(11)) | {255}
    assert {0, 1, 3} <= values and 255 in values, "sky, building, road and void should appear"
