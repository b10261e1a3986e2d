"""Leave the caller's model exactly as it arrived: training flags, ``requires_grad``, buffers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def frozen(model: nn.Module, *, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Run a block with the model's parameters frozen and (by default) in eval mode.

    Freezing parameters means gradients flow to the inputs only, so backward passes skip the
    weight gradients. Every module's ``training`` flag, every parameter's ``requires_grad`` and
    every buffer's value are restored on exit, also when the block raises.

    Example:
        >>> net = nn.BatchNorm2d(2).train()
        >>> with frozen(net):
        ...     net.training, net.weight.requires_grad
        (False, False)
        >>> net.training, net.weight.requires_grad
        (True, True)
    """
    modes = [(module, module.training) for module in model.modules()]
    grads = [(param, param.requires_grad) for param in model.parameters()]
    buffers = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        for param, _ in grads:
            param.requires_grad_(False)
        if eval_mode:
            model.eval()
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for param, requires_grad in grads:
            param.requires_grad_(requires_grad)
        with torch.no_grad():
            for buffer, saved in buffers:
                if not torch.equal(buffer, saved):
                    buffer.copy_(saved)
