"""CamVid in the SegNet layout, on tiny folders written in the real formats (and the real data when present)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regionattack.data import (
    CAMVID_CLASSES,
    CAMVID_VOID,
    CamVid,
    camvid_pairs,
    load_camvid,
)
from tests.helpers import CAMVID_ROOT

SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, POLE, CAR, PERSON = range(8)


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


@pytest.mark.parametrize(
    ("path", "damage"),
    [
        ("train/0001TP_000010.jpg", lambda data: data[: len(data) // 2]),  # truncated JPEG
        ("train/0001TP_000020.png", lambda data: data[: len(data) // 2]),  # truncated PNG
        ("train/0001TP_000020.png", lambda data: b"a text file, not a PNG"),
        ("trainannot/0001TP_000010.png", lambda data: data[:40]),  # a truncated label
    ],
    ids=["jpeg-cut", "png-cut", "text-as-png", "label-cut"],
)
def test_an_undecodable_file_is_named(camvid_root, path, damage):
    file = camvid_root / path
    file.write_bytes(damage(file.read_bytes()))
    dataset = CamVid(camvid_root, "train")
    with pytest.raises(ValueError, match=rf"cannot decode .*{file.name}"):
        [dataset[i] for i in range(len(dataset))]


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
    if not CAMVID_ROOT.is_dir():
        pytest.skip(f"CamVid not found at {CAMVID_ROOT}")
    assert len(camvid_pairs(CAMVID_ROOT, "train")) == 367
    assert len(CamVid(CAMVID_ROOT, "val")) == 101
    image, label = CamVid(CAMVID_ROOT, "train")[0]
    assert image.shape == (3, 360, 480) and label.shape == (360, 480)
    images, labels = load_camvid(CAMVID_ROOT, "train", size=(96, 128), max_images=24)
    assert images.shape == (24, 3, 96, 128) and labels.shape == (24, 96, 128)
    assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.1
    values = set(labels.unique().tolist())
    assert values <= set(range(11)) | {255}
    assert {0, 1, 3} <= values and 255 in values, "sky, building, road and void should appear"
