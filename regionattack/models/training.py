"""A small, honest training loop for segmentation models on tensors (used by the demo)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm.auto import tqdm

from regionattack._checks import (
    IGNORE_INDEX,
    check_images,
    check_labels,
    check_labels_in_range,
    check_positive_int,
)
from regionattack._state import forked_rng
from regionattack.latent import model_logits

logger = logging.getLogger(__name__)

# (model, images, task_loss) -> total loss, e.g. regionattack.defenses.AugShift
LossTerm = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
_REPORTED = 20  # steps averaged in the closing log line


def train_segmenter(
    model: nn.Module,
    images: torch.Tensor | Dataset,
    labels: torch.Tensor | None = None,
    *,
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    hflip: bool = False,
    seed: int = 0,
    progress: bool = True,
    num_workers: int = 0,
    augshift: LossTerm | None = None,
) -> list[float]:
    """Train ``model`` in place with AdamW and a cosine schedule; return the loss of every step.

    Batches are drawn at random with replacement (from ``seed``) from the tensors or the dataset;
    the loss is cross-entropy with 255 ignored, plus what ``augshift`` adds. Every module's
    training flag is restored at the end, also after an error. Dropout (and the DataLoader's
    worker seeds) draw from torch's global generators, going on from their state at the call, so
    seed them before the call for a repeatable model; their state is restored afterwards, so the
    caller's random numbers are the same as if the call had not been made.

    Args:
        model: Segmentation model (a :class:`~regionattack.NormalizedModel` for normalised input).
        images: (N, 3, H, W) images in [0, 1], or a map-style dataset of ``(image, label)`` pairs
            of one size (e.g. :class:`~regionattack.data.CamVid` with ``size=``), read in batches.
        labels: (N, H, W) int64 labels, 255 = ignore (only with image tensors).
        steps: Optimiser steps.
        batch_size: Images per step.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        hflip: Flip half of each batch horizontally (off by default: flips teach the network that
            left and right are interchangeable, which weakens position information).
        seed: Seed for batch sampling and flips.
        progress: Show a tqdm progress bar.
        num_workers: DataLoader worker processes when ``images`` is a dataset.
        augshift: Called as ``augshift(model, batch, task_loss)`` each step (after flips); its
            result is the loss optimised and returned, e.g.
            :class:`regionattack.defenses.AugShift`. The task loss and the added term are logged
            (``logging``: every step at DEBUG, means of the last 20 at INFO).

    Returns:
        The loss of every step (with the ``augshift`` term when given).

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2)
        >>> x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 2, (8, 16, 16))
        >>> len(train_segmenter(net, x, y, steps=3, batch_size=4, progress=False))
        3
    """
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    if augshift is not None and not callable(augshift):
        raise TypeError(
            "augshift must be None or a callable (model, images, task_loss) -> loss; "
            f"got {type(augshift).__name__}"
        )
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    batches = _batches(images, labels, steps, batch_size, generator, num_workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / 10) * 0.5 * (1 + math.cos(math.pi * step / steps)),
    )
    modes = [(module, module.training) for module in model.modules()]
    losses: list[float] = []
    parts: list[tuple[float, float]] = []  # (task loss, augshift term) per step
    # dropout and the DataLoader draw from torch's global generators: they go on from the caller's
    # state, as without the fork, and are put back afterwards
    with forked_rng(device):
        model.train()
        try:
            for batch, target in tqdm(
                batches, total=steps, desc="training", disable=not progress, leave=False
            ):
                batch, target = batch.to(device), target.to(device)
                if hflip:
                    flip = (torch.rand(batch_size, generator=generator) < 0.5).to(device)
                    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
                    target = torch.where(flip[:, None, None], target.flip(-1), target)
                logits = model_logits(model(batch), batch.shape[-2:])
                check_labels_in_range(target, logits.shape[1])
                loss = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
                if augshift is not None:
                    task = loss.item()
                    loss = _check_loss(augshift(model, batch, loss))
                    parts.append((task, loss.item() - task))
                    logger.debug(
                        "step %d: task loss %.4f, augshift term %.4f", len(losses), *parts[-1]
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
        finally:
            for module, training in modes:
                module.training = training
            optimizer.zero_grad(set_to_none=True)
    if parts:
        recent = parts[-_REPORTED:]
        logger.info(
            "last %d steps: task loss %.4f, augshift term %.4f (means)",
            len(recent),
            sum(task for task, _ in recent) / len(recent),
            sum(term for _, term in recent) / len(recent),
        )
    return losses


def _check_loss(loss: object) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"augshift must return a scalar tensor (the total loss); got {shape}")
    return loss


def _batches(
    images: torch.Tensor | Dataset,
    labels: torch.Tensor | None,
    steps: int,
    batch_size: int,
    generator: torch.Generator,
    num_workers: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``steps`` random batches (with replacement) of images and labels."""
    if isinstance(images, torch.Tensor):
        check_images(images)
        if labels is None:
            raise ValueError("labels are required with a tensor of images")
        labels = check_labels(labels, images)
        for _ in range(steps):
            index = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
            yield images[index], labels[index]
        return
    if labels is not None:
        raise ValueError(
            "labels= is only accepted with a tensor of images; the dataset yields them"
        )
    if len(images) == 0:
        raise ValueError("the dataset is empty")
    sampler = RandomSampler(
        images, replacement=True, num_samples=steps * batch_size, generator=generator
    )
    loader = DataLoader(images, batch_size=batch_size, sampler=sampler, num_workers=num_workers)
    for batch, target in loader:
        yield check_images(batch), check_labels(target, batch)
