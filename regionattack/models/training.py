"""A small, honest training loop for segmentation models on tensors (used by the demo)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from regionattack._checks import (
    IGNORE_INDEX,
    check_images,
    check_labels,
    check_labels_in_range,
    check_positive_int,
    state_digest,
)
from regionattack._state import forked_rng
from regionattack.latent import model_logits
from regionattack.models.progress import load_progress, save_progress

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
    scale: tuple[float, float] | None = None,
    progress_file: str | os.PathLike | None = None,
    save_every: int = 50,
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
        scale: ``(low, high)`` scale jitter: each batch is resized by a factor drawn uniformly from
            the range (images bilinear, labels nearest), then cropped at random, or padded
            (images with 0, labels with 255), back to its size. None (default): off.
        progress_file: Resumable training: the progress (weights, optimiser, schedule, random
            states, losses) is written there every ``save_every`` steps, and a call with the same
            settings and initial weights goes on from it, giving the model an uninterrupted run
            gives. The file is deleted when the training finishes. Not with ``augshift``.
        save_every: Steps between two writes of ``progress_file``.

    Returns:
        The loss of every step (with the ``augshift`` term when given), the resumed ones included.

    Raises:
        ValueError: For a progress file of a run with other settings or other initial weights.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2)
        >>> x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 2, (8, 16, 16))
        >>> len(train_segmenter(net, x, y, steps=3, batch_size=4, progress=False))
        3
    """
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    check_positive_int(save_every, "save_every")
    if augshift is not None and not callable(augshift):
        raise TypeError(
            "augshift must be None or a callable (model, images, task_loss) -> loss; "
            f"got {type(augshift).__name__}"
        )
    if augshift is not None and progress_file is not None:
        raise ValueError(
            "progress_file cannot resume augshift's random shifts; use one or the other"
        )
    scale = _check_scale(scale)
    device = next(model.parameters()).device
    settings = {
        "steps": steps, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "hflip": hflip, "seed": seed, "scale": scale and list(scale),
        "images": len(images), "initial_weights": state_digest(model),
    }  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    batches = _Batches(images, labels, steps, batch_size, generator, num_workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / 10) * 0.5 * (1 + math.cos(math.pi * step / steps)),
    )
    modes = [(module, module.training) for module in model.modules()]
    losses: list[float] = []
    parts: list[tuple[float, float]] = []  # (task loss, augshift term) per step
    saved = None if progress_file is None else load_progress(progress_file, settings)
    # dropout and the DataLoader draw from torch's global generators: they go on from the caller's
    # state, as without the fork, and are put back afterwards
    with forked_rng(device):
        if saved is not None:
            _restore(saved, model, optimizer, schedule, generator, device)
            losses = list(saved["losses"])
            batches.skip(saved["step"])
            logger.info("resuming from step %d of %d (%s)", saved["step"], steps, progress_file)
        model.train()
        try:
            for batch, target in tqdm(
                batches,
                initial=len(losses),
                total=steps,
                desc="training",
                disable=not progress,
                leave=False,
            ):
                batch, target = batch.to(device), target.to(device)
                if hflip:
                    flip = (torch.rand(batch_size, generator=generator) < 0.5).to(device)
                    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
                    target = torch.where(flip[:, None, None], target.flip(-1), target)
                if scale is not None:
                    batch, target = rescaled(batch, target, scale, generator)
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
                due = len(losses) % save_every == 0 and len(losses) < steps
                if progress_file is not None and due:
                    save_progress(
                        progress_file,
                        settings,
                        len(losses),
                        _snapshot(model, optimizer, schedule, generator, device, losses),
                    )
        finally:
            for module, training in modes:
                module.training = training
            optimizer.zero_grad(set_to_none=True)
    if progress_file is not None:
        Path(progress_file).unlink(missing_ok=True)
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


class _Batches:
    """``steps`` random batches (with replacement, from ``generator``) of images and labels.

    Image tensors are indexed by a draw from ``generator`` at each step; a dataset's batch indices
    are all drawn at once, before the first step (so the draws of the steps, flips and scales do
    not depend on how far a DataLoader's workers read ahead). :meth:`skip` starts at a later step
    (a resumed run, its generator state restored).
    """

    def __init__(self, images, labels, steps, batch_size, generator, num_workers):
        self.images, self.labels, self.steps = images, labels, steps
        self.batch_size, self.generator, self.num_workers = batch_size, generator, num_workers
        self.start = 0
        if isinstance(images, torch.Tensor):
            check_images(images)
            if labels is None:
                raise ValueError("labels are required with a tensor of images")
            self.labels = check_labels(labels, images)
            return
        if labels is not None:
            raise ValueError(
                "labels= is only accepted with a tensor of images; the dataset yields them"
            )
        if len(images) == 0:
            raise ValueError("the dataset is empty")
        self.order = torch.randint(0, len(images), (steps, batch_size), generator=generator)

    def skip(self, steps_done: int) -> None:
        self.start = steps_done

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if isinstance(self.images, torch.Tensor):
            for _ in range(self.start, self.steps):
                index = torch.randint(
                    0, self.images.shape[0], (self.batch_size,), generator=self.generator
                )
                yield self.images[index], self.labels[index]
            return
        loader = DataLoader(
            self.images,
            batch_sampler=self.order[self.start :].tolist(),
            num_workers=self.num_workers,
            # the workers' base seed from its own generator, not torch's global one (a resumed
            # run would draw it at another point of the global stream)
            generator=torch.Generator().manual_seed(self.generator.initial_seed() + self.start),
        )
        for batch, target in loader:
            yield check_images(batch), check_labels(target, batch)


def _check_scale(scale: object) -> tuple[float, float] | None:
    if scale is None:
        return None
    if (
        not isinstance(scale, (tuple, list))
        or len(scale) != 2
        or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in scale)
        or scale[0] > scale[1]
    ):
        raise ValueError(f"scale must be (low, high) with 0 < low <= high; got {scale!r}")
    return float(scale[0]), float(scale[1])


def rescaled(
    images: torch.Tensor,
    labels: torch.Tensor,
    scale: tuple[float, float],
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch resized by a factor drawn from ``scale``, cropped or padded back to its size.

    Images are resized bilinearly and padded with 0, labels by nearest neighbour and padded with
    255 (ignored); the crop or the padding sits at a random offset. The draws come from
    ``generator``.

    Example:
        >>> x, y = torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)
        >>> xs, ys = rescaled(x, y, (0.5, 0.5), torch.Generator().manual_seed(0))
        >>> xs.shape, int((ys == 255).sum())
        (torch.Size([2, 3, 8, 8]), 96)
    """
    height, width = images.shape[-2:]
    low, high = scale
    factor = low + (high - low) * float(torch.rand((), generator=generator))
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    resized = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    resized_labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
    out = images.new_zeros(images.shape)
    out_labels = labels.new_full(labels.shape, IGNORE_INDEX)
    offsets = []
    for new, old in zip(size, (height, width), strict=True):
        span = abs(new - old) + 1
        offsets.append(int(torch.randint(0, span, (), generator=generator)))
    (top, left), (new_h, new_w) = offsets, size
    if new_h >= height:  # crop
        resized = resized[..., top : top + height, :]
        resized_labels = resized_labels[..., top : top + height, :]
        top = 0
    if new_w >= width:
        resized = resized[..., left : left + width]
        resized_labels = resized_labels[..., left : left + width]
        left = 0
    h, w = resized.shape[-2:]
    out[..., top : top + h, left : left + w] = resized
    out_labels[..., top : top + h, left : left + w] = resized_labels
    return out, out_labels


def _snapshot(model, optimizer, schedule, generator, device, losses) -> dict:
    """What a resumed run needs besides the settings: weights, optimiser, schedule, random states."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "generator": generator.get_state(),
        "global_rng": torch.get_rng_state(),
        "losses": list(losses),
    }
    if torch.device(device).type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def _restore(saved, model, optimizer, schedule, generator, device) -> None:
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    generator.set_state(saved["generator"])
    torch.set_rng_state(saved["global_rng"])
    if "cuda_rng" in saved:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
