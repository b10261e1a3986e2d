"""Wrap a model that expects normalised input so that it takes images in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "NormalizedModel",
    "unwrap",
    "with_normalization",
]


#: Per-channel mean and standard deviation of ImageNet, the inputs of torchvision/smp encoders.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class NormalizedModel(nn.Module):
    """A model preceded by per-channel normalisation ``(images - mean) / std``.

    Every regionattack function sees through this wrapper: layer names, latent detection, ranking
    and ablation refer to the wrapped ``model``.

    Args:
        model: The model that expects normalised input.
        mean: Per-channel mean, one value per input channel.
        std: Per-channel standard deviation, all positive.

    Example:
        >>> net = NormalizedModel(nn.Identity(), mean=(0.5,), std=(0.5,))
        >>> net(torch.ones(1, 1, 1, 1)).item()
        1.0
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
        mean_t, std_t = checked_mean_std(mean, std)
        self.model = model
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std_t.view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor):
        """Normalise ``images`` and run the wrapped model."""
        if images.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"images have {images.shape[1]} channels but mean/std have {self.mean.shape[1]}"
            )
        mean = self.mean.to(images.dtype)
        std = self.std.to(images.dtype)
        return self.model((images - mean) / std)


def checked_mean_std(
    mean: Sequence[float], std: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` as float32 vectors, one finite value per channel, ``std`` positive.

    Example:
        >>> checked_mean_std((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))[1].tolist()
        [0.25, 0.25, 0.25]

    Raises:
        ValueError: If the counts differ or are 0, a value is not finite, or a std is not positive.
    """
    mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
    if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
        raise ValueError(
            f"mean and std need one value per channel; got {mean_t.numel()} and {std_t.numel()}"
        )
    for name, values in (("mean", mean_t), ("std", std_t)):
        if not bool(torch.isfinite(values).all()):
            raise ValueError(f"{name} must be finite; got {values.tolist()}")
    if not bool((std_t > 0).all()):
        raise ValueError(f"std must be positive; got {std_t.tolist()}")
    return mean_t, std_t


def with_normalization(
    model: nn.Module, mean: Sequence[float], std: Sequence[float]
) -> NormalizedModel:
    """Return ``model`` wrapped so that it takes images in [0, 1].

    Example:
        >>> net = with_normalization(nn.Identity(), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        >>> net(torch.zeros(1, 3, 2, 2)).shape
        torch.Size([1, 3, 2, 2])
    """
    return NormalizedModel(model, mean, std)


def unwrap(model: nn.Module) -> nn.Module:
    """Return the model inside any :class:`NormalizedModel` wrappers.

    Example:
        >>> inner = nn.Identity()
        >>> unwrap(with_normalization(inner, (0.0,), (1.0,))) is inner
        True
    """
    while isinstance(model, NormalizedModel):
        model = model.model
    return model
