"""Leave the caller's model and torch's global random generators exactly as they arrived.

The model's training flags, ``requires_grad`` and buffers are restored or never written.
"""

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
                if not buffer.is_meta and not torch.equal(buffer, saved):  # meta: no values
                    buffer.copy_(saved)


@contextlib.contextmanager
def private_buffers(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block in which the modules in training mode update copies of their buffers.

    In training mode, batch norm updates its running statistics (and ``num_batches_tracked``) in
    place during every forward pass. Within the block, the buffers of every module in training mode
    are swapped for copies, and the originals are put back on exit, also when the block raises:
    the model's own buffers are never written. Unlike copying saved values back afterwards (as
    :func:`frozen` does), this leaves valid the tensors that autograd saved in the block, so a
    backward pass through a forward made in training mode still works. Modules in eval mode and
    their buffers are left alone (nothing is copied), and no training flag is changed.

    Example:
        >>> net = nn.BatchNorm2d(2).train()
        >>> with private_buffers(net):
        ...     out = net(torch.rand(4, 2, 3, 3) + 1.0)
        ...     net.num_batches_tracked.item()
        1
        >>> net.num_batches_tracked.item(), net.running_mean.tolist(), net.training
        (0, [0.0, 0.0], True)
    """
    swapped: list[tuple[dict, str, torch.Tensor]] = []
    copies: dict[int, torch.Tensor] = {}  # a buffer shared by several modules gets one copy
    try:
        for module in model.modules():
            if not module.training:
                continue
            for name, buffer in list(module._buffers.items()):
                if buffer is None:
                    continue
                if id(buffer) not in copies:
                    copies[id(buffer)] = buffer.detach().clone()
                swapped.append((module._buffers, name, buffer))
                module._buffers[name] = copies[id(buffer)]
        yield model
    finally:
        for buffers, name, buffer in reversed(swapped):
            buffers[name] = buffer


def forked_rng(device: torch.device | str | None = None) -> contextlib.AbstractContextManager:
    """Fork torch's global generators of the CPU and of ``device``; they are restored on exit.

    Code in the block draws from them as usual (going on from their state on entry), but the
    caller's random numbers afterwards are the same as if the block had not run.

    Args:
        device: The CUDA device whose generator is forked besides the CPU's; default: the CPU's
            only.

    Example:
        >>> state = torch.get_rng_state()
        >>> with forked_rng("cpu"):
        ...     _ = torch.rand(3)
        >>> torch.equal(torch.get_rng_state(), state)
        True
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    if device.type != "cuda":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device.index or torch.cuda.current_device()])


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Seed torch's global generators (CPU and ``device``) for the block, then restore them.

    For code that draws from the global generator (torchattacks' random starts): the block's
    draws repeat for a given ``seed``, and the caller's random state is the same afterwards.

    Example:
        >>> before = torch.get_rng_state()
        >>> with seeded_rng(0):
        ...     first = torch.rand(1)
        >>> with seeded_rng(0):
        ...     bool(torch.rand(1) == first)
        True
        >>> torch.equal(torch.get_rng_state(), before)
        True
    """
    with forked_rng(device):
        torch.manual_seed(seed)
        yield
