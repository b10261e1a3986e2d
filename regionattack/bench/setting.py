"""What every bench experiment runs on: the model, this process's batches of images, the masks.

Every experiment returns numbers already summed over all processes (see
:class:`~regionattack.bench.distributed.Workers`), so the caller only formats and stores them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from regionattack._checks import model_dtype
from regionattack._state import frozen
from regionattack.bench.distributed import Workers
from regionattack.latent import predict
from regionattack.metrics import MaskedConfusions


def ordered_batches(dataset: Dataset, indices: Sequence[int], batch_size: int) -> DataLoader:
    """Batches of ``dataset[indices]`` in order.

    The loader gets its own generator: a DataLoader otherwise draws a seed from torch's global
    generator each time it is iterated, which would change the caller's random state.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> before = torch.get_rng_state()
        >>> [b[0].tolist() for b in ordered_batches(TensorDataset(torch.arange(5)), [0, 2, 4], 2)]
        [[0, 2], [4]]
        >>> torch.equal(torch.get_rng_state(), before)
        True
    """
    return DataLoader(Subset(dataset, indices), batch_size=batch_size, generator=torch.Generator())


@dataclass
class Setting:
    """What every experiment needs: the model, the evaluated images and the measured regions.

    ``dataset`` yields ``(image, label)`` pairs; :meth:`batches` cuts this process's shard of
    them into batches of ``batch_size``. ``masks`` maps names to (H, W) bool masks measured
    alongside all pixels (for each name ``m``, ``not-m`` is obtained as all minus ``m``, since
    confusion counts add over disjoint pixels).
    """

    model: nn.Module
    dataset: Dataset
    batch_size: int
    num_classes: int
    masks: dict[str, torch.Tensor]
    workers: Workers = field(default_factory=Workers)
    progress: bool = True

    def batches(self, limit: int | None = None) -> DataLoader:
        """This process's shard of the first ``limit`` images (all when None), in order."""
        count = len(self.dataset) if limit is None else min(limit, len(self.dataset))
        return ordered_batches(self.dataset, self.workers.shard(count), self.batch_size)

    def iterate(
        self, description: str, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This shard's batches on the device (images in the model's dtype), with a progress bar."""
        for images, labels in tqdm(
            self.batches(limit),
            desc=description,
            leave=False,
            disable=not (self.progress and self.workers.is_main),
        ):
            images = images.to(self.workers.device, model_dtype(self.model))
            yield images, labels.to(self.workers.device)


def sum_confusions(confusions: Sequence[MaskedConfusions], workers: Workers) -> None:
    """All-reduce many confusion stacks in one collective call."""
    if workers.world_size == 1:
        return
    stacked = workers.sum(torch.stack([c.counts for c in confusions]))
    for confusion, counts in zip(confusions, stacked, strict=True):
        confusion.counts = counts


def evaluate_clean(setting: Setting) -> MaskedConfusions:
    """Confusion matrices of the model's clean predictions."""
    confusions = MaskedConfusions(setting.num_classes, setting.masks)
    with frozen(setting.model):
        for images, labels in setting.iterate("clean"):
            confusions.update(predict(setting.model, images), labels)
    sum_confusions([confusions], setting.workers)
    return confusions
