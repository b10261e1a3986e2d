import pytest
from torch import nn

from regionattack._state import frozen, private_buffers
from tests.helpers import assert_untouched, snapshot


def _batch_norm_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).train()


def test_private_buffers_leaves_buffers_and_keeps_gradients(images):
    model = _batch_norm_net()
    before = snapshot(model)
    with private_buffers(model):
        out = model(images)
        assert model[1].num_batches_tracked.item() == 1  # the copies were updated
    out.sum().backward()  # autograd's saved tensors are still valid
    assert model[0].weight.grad is not None
    model.zero_grad(set_to_none=True)
    assert_untouched(model, before)


def test_private_buffers_restores_on_error_and_skips_eval_modules(images):
    model = _batch_norm_net()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"), private_buffers(model):
        model(images)
        raise RuntimeError("boom")
    assert_untouched(model, before)
    model.eval()
    buffer = model[1].running_mean
    with private_buffers(model):
        assert model[1].running_mean is buffer  # nothing is copied in eval mode


def test_private_buffers_gives_a_shared_buffer_one_copy():
    first, second = nn.BatchNorm2d(2), nn.BatchNorm2d(2)
    second._buffers["running_mean"] = first.running_mean
    model = nn.Sequential(first, second).train()
    original = first.running_mean
    with private_buffers(model):
        assert first.running_mean is second.running_mean
        assert first.running_mean is not original
    assert first.running_mean is original and second.running_mean is original


def test_frozen_restores_flags_and_buffers_after_an_error(images):
    model = _batch_norm_net()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"), frozen(model, eval_mode=False):
        model(images)
        raise RuntimeError("boom")
    assert_untouched(model, before)
