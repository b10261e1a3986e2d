import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from regionattack._checks import (
    check_images,
    check_k,
    check_labels,
    check_radius,
    check_seed,
    state_digest,
)


@settings(max_examples=60, deadline=None)
@given(
    ndim=st.integers(2, 5),
    low=st.floats(-2, 1.5, allow_nan=False),
    span=st.floats(0, 2, allow_nan=False),
    nan=st.booleans(),
)
def test_check_images_accepts_exactly_finite_4d_unit_range(ndim, low, span, nan):
    shape = (2, 3, 4, 5, 6)[:ndim]
    images = torch.linspace(low, low + span, int(torch.tensor(shape).prod())).reshape(shape)
    if nan:
        images[(0,) * ndim] = float("nan")
    finite = images[~torch.isnan(images)]
    valid = ndim == 4 and not nan and bool(finite.min() >= 0) and bool(finite.max() <= 1)
    if valid:
        assert check_images(images) is images
    else:
        with pytest.raises(ValueError):
            check_images(images)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6), dn=st.integers(-1, 1))
def test_check_labels_shape(n, h, w, dn):
    images = torch.zeros(n, 3, h, w)
    labels = torch.zeros(max(n + dn, 1), h, w, dtype=torch.long)
    if labels.shape[0] == n:
        assert check_labels(labels, images).dtype == torch.long
    else:
        with pytest.raises(ValueError, match=r"labels must be \(N, H, W\)"):
            check_labels(labels, images)


def test_type_errors_and_k():
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_images([[0.0]])
    with pytest.raises(TypeError, match="float"):
        check_images(torch.zeros(1, 3, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="at most the channel count 4"):
        check_k(5, 4)
    with pytest.raises(TypeError, match="int"):
        check_k(2.0, 4)
    with pytest.raises(ValueError, match=">= 0"):
        check_labels(torch.full((1, 2, 2), -1), torch.zeros(1, 3, 2, 2))


def test_check_radius_refuses_pixel_units():
    assert check_radius(8 / 255, "eps") == 8 / 255
    assert check_radius(1, "eps") == 1.0
    with pytest.raises(
        ValueError,
        match=r"eps is an L-inf radius in image units \[0, 1\]; got 8 \(did you mean "
        r"8/255 = 0\.0314\?\)",
    ):
        check_radius(8, "eps")
    with pytest.raises(ValueError, match=r"alpha is an L-inf step in image units \[0, 1\]; got 2"):
        check_radius(2, "alpha", kind="step")
    with pytest.raises(ValueError, match=">= 0"):
        check_radius(-0.1, "eps")
    with pytest.raises(TypeError, match="number"):
        check_radius("8", "eps")


@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        ("a", TypeError, "seed must be an int or None; got str"),
        (True, TypeError, "got bool"),
        (1.0, TypeError, "got float"),
        (2**64, ValueError, "seed must lie in"),
    ],
)
def test_check_seed_refuses_non_int_seeds(seed, error, match):
    with pytest.raises(error, match=match):
        check_seed(seed)


def test_check_seed_accepts_ints_and_none():
    assert check_seed(None) is None
    assert check_seed(0) == 0
    assert check_seed(np.int64(3)) == 3


def test_state_digest_identifies_the_weights():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    digest = state_digest(net)
    assert len(digest) == 16 and int(digest, 16) >= 0
    copy = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    copy.load_state_dict(net.state_dict())
    assert state_digest(copy) == digest
    with torch.no_grad():
        copy[0].weight[0, 0] += 1
    assert state_digest(copy) != digest


def test_import_optional_names_the_extra_for_a_missing_or_old_package(monkeypatch):
    import sys
    import types

    from regionattack._checks import import_optional

    monkeypatch.setitem(sys.modules, "missing_pkg", None)
    with pytest.raises(
        ImportError, match=r"optional package 'missing_pkg': pip install 'regionattack\[hf\]'"
    ):
        import_optional("missing_pkg", "hf")
    monkeypatch.setitem(sys.modules, "old_pkg", types.SimpleNamespace(__version__="5.8.2"))
    with pytest.raises(ImportError, match=r"old_pkg >= 5\.9, found 5\.8\.2: pip install"):
        import_optional("old_pkg", "hf", "5.9")
    monkeypatch.setitem(sys.modules, "new_pkg", types.SimpleNamespace(__version__="5.10.0.dev0"))
    assert import_optional("new_pkg", "hf", "5.9").__version__ == "5.10.0.dev0"  # 10 > 9
