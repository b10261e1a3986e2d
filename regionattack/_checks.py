"""Input validation shared by the public entry points (and where a model's tensors live).

Every check raises ``ValueError`` (``TypeError`` for a wrong type) naming what was expected and what
arrived. Checks are never switched off and never use ``assert``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE_INDEX = 255


def model_device(model: torch.nn.Module, fallback: torch.device) -> torch.device:
    """The device of the model's first parameter (else buffer); ``fallback`` when it has neither.

    Example:
        >>> model_device(torch.nn.Identity(), torch.device("cpu"))
        device(type='cpu')
    """
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return fallback


def check_tensor(value: object, name: str) -> torch.Tensor:
    """Return ``value`` if it is a tensor, else raise ``TypeError``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    return value


def check_images(images: object) -> torch.Tensor:
    """Check a batch of images: float (N, C, H, W), finite, in [0, 1].

    Example:
        >>> check_images(torch.zeros(1, 3, 4, 4)).shape
        torch.Size([1, 3, 4, 4])
    """
    images = check_tensor(images, "images")
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a float tensor in [0, 1]; got dtype {images.dtype}")
    if images.numel() == 0:
        raise ValueError(f"images must not be empty; got shape {tuple(images.shape)}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise ValueError(
            f"images must lie in [0, 1]; got values in [{low:.4g}, {high:.4g}]. Normalise inside "
            "the model (regionattack.with_normalization) or call set_normalization_used"
        )
    return images


def check_labels(labels: object, images: torch.Tensor, name: str = "labels") -> torch.Tensor:
    """Check a label map matching ``images``: integer (N, H, W); 255 marks pixels to ignore.

    Returns the labels as int64 on the images' device.
    """
    labels = check_tensor(labels, name)
    expected = (images.shape[0], *images.shape[-2:])
    if tuple(labels.shape) != expected:
        raise ValueError(
            f"{name} must be (N, H, W) = {expected} to match images; got {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor; got dtype {labels.dtype}")
    labels = labels.to(device=images.device, dtype=torch.long)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{name} must be >= 0 (255 = ignore); got minimum {int(labels.min())}")
    return labels


def check_labels_in_range(labels: torch.Tensor, num_classes: int, name: str = "labels") -> None:
    """Raise if a label other than the ignore index is not a valid class id."""
    valid = labels[labels != IGNORE_INDEX]
    if valid.numel() and int(valid.max()) >= num_classes:
        raise ValueError(
            f"{name} hold class {int(valid.max())} but the model predicts {num_classes} classes "
            f"(use {IGNORE_INDEX} for pixels to ignore)"
        )


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int if it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive; got {value}")
    return value


def check_nonnegative_float(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    value = float(value)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0; got {value}")
    return value


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")
    return value  # type: ignore[return-value]


def check_k(k: object, num_channels: int) -> int:
    """Check a channel count ``k`` against the latent's channel count."""
    k = check_positive_int(k, "k")
    if k > num_channels:
        raise ValueError(f"k must be at most the channel count {num_channels}; got {k}")
    return k
