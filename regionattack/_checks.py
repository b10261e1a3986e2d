"""Input validation shared by the public entry points (and where a model's tensors live).

Every check raises ``ValueError`` (``TypeError`` for a wrong type) naming what was expected and what
arrived. Checks are never switched off and never use ``assert``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import torch

#: The label of pixels that are never counted nor attacked (void; CamVid, Cityscapes, VOC).
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


def check_device(device: object, name: str = "device") -> torch.device | None:
    """``device`` as a torch device this machine has (None stays None: the default).

    Raises:
        ValueError: For a string torch does not read as a device, or a CUDA device on a machine
            without one (or without that index). Other accelerators are refused: the library is
            tested on the CPU and CUDA only.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"{name} must be 'cpu' or 'cuda[:index]'; got {device!r} ({error})"
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {device!r}: no CUDA device is available here; use 'cpu'")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"{name} {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif parsed.type != "cpu":
        raise ValueError(f"{name} must be 'cpu' or 'cuda[:index]'; got {device!r}")
    return parsed


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


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """The floating dtype the model computes in: float32 or float64 (float32 without parameters).

    Raises:
        ValueError: For a float16 / bfloat16 model (attacks and rankings need float32 gradients)
            or parameters on the meta device (no values to compute with).

    Example:
        >>> model_dtype(torch.nn.Linear(2, 1).double())
        torch.float64
    """
    for tensor in model.parameters():  # the first floating parameter decides (a per-step call)
        if tensor.is_floating_point():
            if tensor.is_meta:
                raise ValueError(
                    "the model's parameters are on the meta device (no values); load its weights "
                    "first (e.g. model.to_empty(device='cpu') and load_state_dict)"
                )
            if tensor.dtype in (torch.float16, torch.bfloat16):
                raise ValueError(
                    f"the model's parameters are {tensor.dtype}; regionattack computes in float32 "
                    "or float64 (gradients at half precision are too coarse for an attack step): "
                    "pass model.float()"
                )
            return tensor.dtype
    return torch.float32


def model_inputs(model: torch.nn.Module, images: object) -> torch.Tensor:
    """Checked images (see :func:`check_images`) on the model's device and in its dtype.

    Images of any floating dtype are accepted (float16 and bfloat16 included); the model decides
    the dtype they are computed in (:func:`model_dtype`).

    Example:
        >>> model_inputs(torch.nn.Conv2d(3, 1, 1), torch.zeros(1, 3, 2, 2, dtype=torch.float16)).dtype
        torch.float32
    """
    images = check_images(images)
    return images.detach().to(model_device(model, images.device), model_dtype(model))


def check_class_map(value: object, name: str) -> torch.Tensor:
    """Return ``value`` if it is a tensor of integer class ids (not float, not bool).

    Example:
        >>> check_class_map(torch.tensor([1.7]), "preds")
        Traceback (most recent call last):
        ...
        TypeError: preds must hold integer class ids; got dtype torch.float32 (for logits, pass logits.argmax(1))
    """
    value = check_tensor(value, name)
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(
            f"{name} must hold integer class ids; got dtype {value.dtype}"
            + (" (for logits, pass logits.argmax(1))" if value.is_floating_point() else "")
        )
    return value


def check_labels(labels: object, images: torch.Tensor, name: str = "labels") -> torch.Tensor:
    """Check a label map matching ``images``: integer (N, H, W); 255 marks pixels to ignore.

    Returns the labels as int64 on the images' device.
    """
    labels = check_class_map(labels, name)
    expected = (images.shape[0], *images.shape[-2:])
    if tuple(labels.shape) != expected:
        raise ValueError(
            f"{name} must be (N, H, W) = {expected} to match images; got {tuple(labels.shape)}"
        )
    labels = labels.to(device=images.device, dtype=torch.long)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{name} must be >= 0 (255 = ignore); got minimum {int(labels.min())}")
    return labels


def check_labels_in_range(labels: torch.Tensor, num_classes: int, name: str = "labels") -> None:
    """Raise if a label other than the ignore index is not a valid class id."""
    valid = labels[labels != IGNORE_INDEX]
    if valid.numel() and int(valid.max()) >= num_classes:
        raise ValueError(
            f"{name}: found class {int(valid.max())} but the model predicts {num_classes} classes "
            f"(use {IGNORE_INDEX} for pixels to ignore)"
        )


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int if it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive; got {value}")
    return value


def check_nonnegative_int(value: object, name: str) -> int:
    """Return ``value`` if it is an integer >= 0 (a count that may be zero; bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return value


def check_nonnegative_float(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    value = float(value)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0; got {value}")
    return value


def check_radius(value: object, name: str, kind: str = "radius") -> float:
    """Return ``value`` as a float if it is an L-inf ``kind`` in image units, a number in [0, 1].

    Attacks perturb images in [0, 1], so a radius of 8 is a mistake for 8/255; the error says so.

    Args:
        value: The radius (or step size).
        name: Argument name for the message (``"eps"``, ``"alpha"``).
        kind: What the value is, for the message (``"radius"``, ``"step"``).

    Raises:
        TypeError: If ``value`` is not a number.
        ValueError: If it is negative, not finite or above 1.

    Example:
        >>> round(check_radius(8 / 255, "eps"), 4)
        0.0314
        >>> check_radius(8, "eps")
        Traceback (most recent call last):
        ...
        ValueError: eps is an L-inf radius in image units [0, 1]; got 8 (did you mean 8/255 = 0.0314?)
    """
    value = check_nonnegative_float(value, name)
    if value > 1:
        raise ValueError(
            f"{name} is an L-inf {kind} in image units [0, 1]; got {value:g} "
            f"(did you mean {value:g}/255 = {value / 255:.4f}?)"
        )
    return value


def check_seed(seed: object, name: str = "seed") -> int | None:
    """Return ``seed`` if it is None or an int a ``torch.Generator`` accepts (bool is refused).

    Example:
        >>> check_seed(0), check_seed(None)
        (0, None)
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not hasattr(seed, "__index__") or isinstance(seed, torch.Tensor):
        raise TypeError(f"{name} must be an int or None; got {type(seed).__name__}")
    seed = int(seed.__index__())  # type: ignore[attr-defined]
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"{name} must lie in [-2**63, 2**64) (a torch.Generator seed); got {seed}")
    return seed


def state_digest(model: torch.nn.Module) -> str:
    """Identity of a model's weights: SHA-256 (hex, first 16 digits) of its ``state_dict``.

    Names and tensor bytes of every parameter and persistent buffer enter the hash, so two models
    share a digest exactly when their state dicts are equal (same keys, dtypes and values). The
    whole state is read once (copied to the CPU): call it once per model, not per step.

    Example:
        >>> net, twin = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        >>> _ = twin.load_state_dict(net.state_dict())
        >>> len(state_digest(net)), state_digest(twin) == state_digest(net)
        (16, True)
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


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


def import_optional(name: str, extra: str, minversion: str | None = None) -> object:
    """Import an optional package, or raise ``ImportError`` naming the extra that installs it.

    Args:
        name: Module to import (e.g. ``"transformers"``).
        extra: The regionattack extra that installs it (e.g. ``"hf"``).
        minversion: Oldest release that works, compared number by number (``"5.9"``).

    Raises:
        ImportError: If the package is missing or older than ``minversion``.

    Example:
        >>> import_optional("math", "none").__name__
        'math'
    """
    import importlib

    hint = f"pip install 'regionattack[{extra}]'"
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"this needs the optional package {name!r}: {hint}") from error
    if minversion is not None:
        found = str(getattr(module, "__version__", "0"))
        if _release(found) < _release(minversion):
            raise ImportError(f"this needs {name} >= {minversion}, found {found}: {hint}")
    return module


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string: ``"5.9.0.dev0"`` -> ``(5, 9, 0)``."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group().split(".")) if match else ()
