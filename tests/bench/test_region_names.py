"""The regions the bench and the defense harness attack and measure, by name."""

import pytest
import torch

from regionattack import regions
from regionattack.bench.region_names import REGION_NAMES, region_mask


def test_the_names_are_the_library_regions_and_the_cell():
    assert REGION_NAMES == (*regions.NAMES, "cell")


@pytest.mark.parametrize("name", regions.NAMES)
def test_a_named_region_is_the_librarys_mask(name):
    assert torch.equal(region_mask(name, (6, 10)), regions.named(name, (6, 10)))


@pytest.mark.parametrize("size", [(16, 16), (7, 5)])
def test_the_cell_is_the_top_left_quadrant(size):
    mask = region_mask("cell", size)
    assert mask.shape == size and mask.dtype == torch.bool
    rows, cols = mask.nonzero().unbind(1)
    assert int(rows.min()) == 0 and int(cols.min()) == 0  # it starts in the top-left corner
    assert int(rows.max()) < (size[0] + 1) // 2 and int(cols.max()) < (size[1] + 1) // 2
    assert int(mask.sum()) == (int(rows.max()) + 1) * (int(cols.max()) + 1)  # one rectangle
    assert torch.equal(mask, regions.grid_cell(size, 2, 2, 0))
    assert region_mask("cell", (16, 16)).sum() == 64


def test_an_unknown_name_is_refused_listing_the_choices():
    with pytest.raises(
        ValueError, match=r"region must be one of \['left', .*'cell'\]; got 'middle'"
    ):
        region_mask("middle", (4, 4))
