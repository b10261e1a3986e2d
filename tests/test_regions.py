import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from regionattack import regions


@given(h=st.integers(2, 40), w=st.integers(2, 40))
def test_halves_are_disjoint_and_cover(h, w):
    left, right = regions.named("left", (h, w)), regions.named("right", (h, w))
    top, bottom = regions.named("top", (h, w)), regions.named("bottom", (h, w))
    for a, b in ((left, right), (top, bottom)):
        assert a.shape == (h, w) and a.dtype == torch.bool
        assert not (a & b).any()
        assert (a | b).all()
    center = regions.named("center", (h, w))
    assert center.any()
    if h >= 4 and w >= 4:
        assert not center[0].any() and not center[:, 0].any() and center.sum() * 2 <= h * w


@given(h=st.integers(1, 30), w=st.integers(1, 30), rows=st.integers(1, 5), cols=st.integers(1, 5))
def test_grid_cells_tile_the_image(h, w, rows, cols):
    if rows > h or cols > w:
        with pytest.raises(ValueError, match="does not fit"):
            regions.grid_cells((h, w), rows, cols)
        return
    cells = regions.grid_cells((h, w), rows, cols)
    assert cells.shape == (rows * cols, h, w)
    assert torch.equal(cells.sum(0), torch.ones(h, w, dtype=torch.long))
    assert cells.flatten(1).any(1).all()


def test_grid_cell_index_and_box_errors():
    with pytest.raises(ValueError, match="index"):
        regions.grid_cell((4, 4), 2, 2, 4)
    with pytest.raises(ValueError, match="box must satisfy"):
        regions.box((4, 4), 2, 0, 2, 4)
    with pytest.raises(ValueError, match="region name must be one of"):
        regions.named("middle", (4, 4))


@pytest.mark.parametrize(
    "mask",
    [
        torch.tensor([[1, 0], [0, 0]]),
        torch.tensor([[True, False], [False, False]]),
        np.array([[1, 0], [0, 0]], dtype=np.uint8),
        torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]),
        Image.fromarray(np.array([[255, 0], [0, 0]], dtype=np.uint8)),
    ],
)
def test_as_mask_accepts_user_masks(mask):
    out = regions.as_mask(mask, (2, 2))
    assert out.dtype == torch.bool and out.shape == (1, 2, 2)
    assert out[0].tolist() == [[True, False], [False, False]]


@given(h=st.integers(1, 8), w=st.integers(1, 8), n=st.integers(1, 3), seed=st.integers(0, 999))
def test_as_mask_validation(h, w, n, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, h, w, generator=g) > 0.5
    if not mask.flatten(1).any(1).all():
        with pytest.raises(ValueError, match="empty"):
            regions.as_mask(mask, (h, w))
        return
    assert regions.as_mask(mask, (h, w), batch=n).shape == (n, h, w)
    with pytest.raises(ValueError, match="must be"):
        regions.as_mask(mask, (h + 1, w))
    if n > 1:
        with pytest.raises(ValueError, match="batch has"):
            regions.as_mask(mask, (h, w), batch=n + 1)
    with pytest.raises(ValueError, match="only 0 and 1"):
        regions.as_mask(mask.float() * 2, (h, w))
    bad = mask.float()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        regions.as_mask(bad, (h, w))


def test_as_mask_rejects_other_types():
    with pytest.raises(TypeError, match="region must be"):
        regions.as_mask([[1, 0]], (1, 2))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((0.5, 0, 2, 2), TypeError, r"top must be an int \(a pixel index\); got float 0.5"),
        ((0, True, 2, 2), TypeError, "left must be an int"),
        ((0, 0, "2", 2), TypeError, "bottom must be an int"),
        ((0, 0, 2, None), TypeError, "right must be an int"),
        ((0, 0, 5, 2), ValueError, "box must satisfy"),
    ],
)
def test_box_validates_its_arguments(args, error, match):
    with pytest.raises(error, match=match):
        regions.box((4, 4), *args)


def test_box_accepts_numpy_and_tensor_ints():
    mask = regions.box((4, 4), np.int64(0), torch.tensor(1), 2, np.int32(3))
    assert mask.sum() == 4


@pytest.mark.parametrize(
    ("size", "error"), [((4.5, 4), TypeError), (("4", 4), TypeError), ((4, 0), ValueError)]
)
def test_box_validates_the_size(size, error):
    with pytest.raises(error, match="height|width"):
        regions.box(size, 0, 0, 1, 1)
