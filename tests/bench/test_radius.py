"""Radii in result keys, labels and plots: their value in 1/255 units."""

import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from regionattack.bench.radius import in_255ths, radius_label


@pytest.mark.parametrize(
    ("eps", "value", "label"),
    [
        (8 / 255, 8.0, "8"),
        (0.5 / 255, 0.5, "0.5"),
        (0.0, 0.0, "0"),
        (1.0, 255.0, "255"),
        (0.03, 7.65, "7.65"),
        (1 / 3, 85.0, "85"),
        (0.001, 0.255, "0.255"),
        (1e-7, 0.0, "0"),  # below 1e-4 / 255: rounded away
    ],
)
def test_radii_are_shown_in_255ths_rounded_to_four_decimals(eps, value, label):
    assert in_255ths(eps) == value
    assert radius_label(eps) == label


@given(eps=st.floats(0.0, 99 / 255))
def test_labels_are_plain_decimals_that_read_back_as_the_radius(eps):
    label = radius_label(eps)
    assert re.fullmatch(r"\d{1,2}(\.\d{1,4})?", label), label  # no exponent: safe in file names
    assert float(label) == in_255ths(eps)
    assert abs(float(label) / 255 - eps) <= 0.5e-4 / 255 + 1e-12


def test_distinct_radii_in_255ths_have_distinct_labels():
    first, second = 207.1875 / 255, 207.188 / 255
    assert in_255ths(first) != in_255ths(second)
    assert radius_label(first) != radius_label(second)


def test_radii_that_share_a_result_key_are_refused_by_every_consumer():
    from regionattack.bench import BenchConfig, evaluate_defense
    from regionattack.bench.radius import check_radii
    from regionattack.models import TinySegmenter

    twins = (8 / 255, 0.0313725)  # 8.0 and 7.99999 in 1/255: one label, one key
    assert check_radii([2 / 255, 8 / 255]) == [2 / 255, 8 / 255]
    with pytest.raises(ValueError, match="give each radius once"):
        check_radii(twins)
    with pytest.raises(ValueError, match="give each radius once"):
        BenchConfig(dataset="synthetic", root=".", out=".", eps=twins).validate()
    data = (torch.rand(6, 3, 16, 16), torch.zeros(6, 16, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="give each radius once"):
        evaluate_defense({"a": TinySegmenter(num_classes=3)}, data, eps=twins, progress=False)
