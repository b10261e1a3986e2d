"""Training-time defenses against position encoding: AugShift and non-zero padding.

Islam et al. (ICCV 2021) show that a CNN's latent carries *absolute* position even after global
pooling: zero padding lets the network tell how far an object is from the image border, and that
position is written into *which channels* fire, so it survives pooling. Their Section 4 proposes
**AugShift**: pass two shifted crops of each image through the encoder and penalise the distance
between the two pooled latents. A network minimising it must give the same pooled latent wherever
the content sits, so the pooled latent carries less absolute position.

This module offers

* :func:`augshift_loss`, the penalty as a plain function, and :class:`AugShift`, a thin module
  adding it to a task loss (``train_segmenter(..., augshift=AugShift(0.1))``);
* :func:`set_padding`, a copy of a model whose padded convolutions pad by reflection, replication
  or wrapping instead of zeros, removing the border cue zero padding gives; and
  :func:`padding_modes`, which counts padded convolutions per padding mode.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from regionattack._checks import (
    check_images,
    check_nonnegative_float,
    check_tensor,
    import_optional,
)
from regionattack.latent import latent_of

__all__ = [
    "PADDING_MODES",
    "AugShift",
    "PaddedConv2d",
    "augshift_loss",
    "padding_modes",
    "set_padding",
]

#: The padding modes :func:`set_padding` converts to.
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_ALIASES = {"zero": "zeros"}
_ANY_SIZE = ("reflect", "circular")  # torch limits their padding to about the input size


def _check_max_shift(max_shift: object) -> float:
    value = check_nonnegative_float(max_shift, "max_shift")
    if value > 1:
        raise ValueError(f"max_shift is a fraction of the image size in [0, 1]; got {value}")
    return value


def _check_layer(layer: object) -> str | None:
    if layer is not None and not isinstance(layer, str):
        raise TypeError(f"layer must be None or a dotted module name; got {type(layer).__name__}")
    return layer


def _shifted_views(
    images: torch.Tensor, max_shift: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Return (2N, C, H, W): two independently shifted copies of every image, views 1 then 2."""
    import_optional("kornia", "bench")  # kornia takes seconds to import: only when used
    from kornia.geometry.transform import translate

    n, _, height, width = images.shape
    draw_on = images.device if generator is None else generator.device
    fraction = torch.rand(2 * n, 2, generator=generator, device=draw_on)
    scale = torch.tensor([width, height], dtype=fraction.dtype, device=draw_on)
    pixels = (2 * fraction - 1) * max_shift * scale  # (dx, dy) in [-max_shift, max_shift] * size
    views = translate(
        images.repeat(2, 1, 1, 1),
        pixels.to(device=images.device, dtype=images.dtype),
        padding_mode="reflection",
    )
    return views.clamp(0, 1)


def augshift_loss(
    model: nn.Module,
    images: torch.Tensor,
    *,
    max_shift: float = 0.25,
    layer: str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return AugShift's penalty: the distance between the pooled latents of two shifted views.

    Every image is shifted twice, independently, by up to ``max_shift`` of its width and height
    (kornia's ``translate``); the uncovered border is filled by reflection, so each view is a crop
    of the reflection-padded image at a random offset, of the image's own size. Both views (one
    batch of 2N) run through ``model`` up to the latent layer; each latent is global-average
    pooled to (2N, K), and the result is the mean squared error between the two views' vectors.
    Content is the same in both views and only its position differs, so the penalty is small when
    the pooled latent ignores absolute position (Islam et al., ICCV 2021, Section 4).

    Gradients flow to the model's parameters, so the penalty can be added to a training loss. The
    model runs in whatever mode it is in (its training flag is not changed; in training mode its
    batch-norm statistics see the shifted views, as they would any augmentation).

    Args:
        model: Segmentation model (images in [0, 1], e.g. a :class:`~regionattack.NormalizedModel`).
        images: (N, C, H, W) images in [0, 1].
        max_shift: Largest shift as a fraction of the image size, in [0, 1]; 0 returns a zero
            penalty without running the model.
        layer: Latent layer name; default: the architecture's latent (see
            :func:`~regionattack.latent.find_layer`).
        generator: Draws the shifts (on its device); default: torch's global generator.

    Returns:
        A scalar tensor >= 0.

    Raises:
        TypeError: If ``images`` is not a float tensor or ``generator`` not a ``torch.Generator``.
        ValueError: If ``images`` are not (N, C, H, W) in [0, 1], ``max_shift`` is outside [0, 1]
            or ``layer`` names no module.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net, x = TinySegmenter(), torch.rand(2, 3, 16, 16)
        >>> augshift_loss(net, x, max_shift=0.0).item()
        0.0
        >>> loss = augshift_loss(net, x, generator=torch.Generator().manual_seed(0))
        >>> loss.ndim, loss.item() > 0, loss.requires_grad
        (0, True, True)
    """
    check_images(images)
    max_shift = _check_max_shift(max_shift)
    layer = _check_layer(layer)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    if max_shift == 0:  # both views are the image itself
        return images.new_zeros(())
    views = _shifted_views(images, max_shift, generator)
    # A training forward: in training mode batch norm's running statistics see the views.
    pooled = latent_of(model, views, layer, update_buffers=True).mean(dim=(2, 3))
    first, second = pooled.chunk(2)
    return F.mse_loss(first, second)


class AugShift(nn.Module):
    """Add AugShift's penalty (:func:`augshift_loss`) to a task loss.

    ``augshift(model, images, task_loss)`` returns ``task_loss + weight * augshift_loss(...)``,
    the signature :func:`~regionattack.models.train_segmenter` calls with each batch.

    Args:
        weight: Weight of the penalty, >= 0; 0 returns the task loss without running the model.
        max_shift: Largest shift as a fraction of the image size, in [0, 1].
        layer: Latent layer name; default: the architecture's latent.
        seed: Seeds a generator owned by this module for the shifts; default: torch's global
            generator.

    Raises:
        TypeError: If a setting has the wrong type.
        ValueError: If ``weight`` is negative or ``max_shift`` outside [0, 1].

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net, x = TinySegmenter(), torch.rand(2, 3, 16, 16)
        >>> augshift = AugShift(weight=0.5, max_shift=0.25, seed=0)
        >>> augshift
        AugShift(weight=0.5, max_shift=0.25, layer=None, seed=0)
        >>> total = augshift(net, x, torch.tensor(1.0))
        >>> total.item() > 1.0, total.requires_grad
        (True, True)
    """

    def __init__(
        self,
        weight: float = 1.0,
        max_shift: float = 0.25,
        layer: str | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        self.weight = check_nonnegative_float(weight, "weight")
        self.max_shift = _check_max_shift(max_shift)
        self.layer = _check_layer(layer)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be None or an int; got {type(seed).__name__}")
        self.seed = seed
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def forward(
        self, model: nn.Module, images: torch.Tensor, task_loss: torch.Tensor
    ) -> torch.Tensor:
        """Return ``task_loss + weight * augshift_loss(model, images, ...)``."""
        check_tensor(task_loss, "task_loss")
        if self.weight == 0:
            return task_loss
        penalty = augshift_loss(
            model, images, max_shift=self.max_shift, layer=self.layer, generator=self.generator
        )
        return task_loss + self.weight * penalty

    def extra_repr(self) -> str:
        """Settings shown by ``repr``."""
        return (
            f"weight={self.weight}, max_shift={self.max_shift}, layer={self.layer!r}, "
            f"seed={self.seed}"
        )


def _padding_amounts(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """``F.pad`` amounts (left, right, top, bottom) from the conv's *current* padding.

    torch caches them at construction; models that dilate their convolutions afterwards (smp's
    DeepLabV3 sets ``dilation`` and ``padding`` on built convs) leave the cache stale.
    """
    padding = conv.padding
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        # "same": torch's split, the extra pixel after
        totals = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
        (top, left) = (total // 2 for total in totals)
        return (left, totals[1] - left, top, totals[0] - top)
    height, width = (padding, padding) if isinstance(padding, int) else padding
    return (width, width, height, height)


def _pad_indices(size: int, before: int, after: int, mode: str, device: torch.device):
    """Source index of every padded position along one dimension (NumPy's np.pad semantics)."""
    positions = torch.arange(-before, size + after, device=device)
    if mode == "circular":
        return positions.remainder(size)
    if size == 1:  # reflect: nothing to reflect about
        return torch.zeros_like(positions)
    period = 2 * (size - 1)
    folded = positions.remainder(period)
    return torch.where(folded < size, folded, period - folded)


def _pad(inputs: torch.Tensor, amounts: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """``F.pad`` that also accepts reflect/circular paddings as large as, or larger than, the input."""
    left, right, top, bottom = amounts
    height, width = inputs.shape[-2:]
    slack = 1 if mode == "reflect" else 0  # torch: reflect needs padding < size, circular <=
    fits = max(left, right) <= width - slack and max(top, bottom) <= height - slack
    if mode not in _ANY_SIZE or fits:
        return F.pad(inputs, amounts, mode=mode)
    rows = _pad_indices(height, top, bottom, mode, inputs.device)
    columns = _pad_indices(width, left, right, mode, inputs.device)
    return inputs.index_select(-2, rows).index_select(-1, columns)


class PaddedConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose reflect/circular padding works at any input size.

    torch's reflect padding needs padding < input size, and circular padding <= input size; a
    dilated convolution on a small feature map (DeepLabV3's ASPP at rate 12 on an 8x8 latent)
    breaks both. Here larger paddings repeat the reflection or wrap as NumPy's ``np.pad`` does
    (``"reflect"``, ``"wrap"``); wherever torch accepts the padding the result is torch's. The
    weights and state-dict keys are those of ``nn.Conv2d``. :func:`set_padding` makes these.

    Example:
        >>> conv = set_padding(nn.Conv2d(1, 1, 3, padding=2, dilation=2), "reflect")
        >>> type(conv).__name__, conv(torch.rand(1, 1, 1, 2)).shape
        ('PaddedConv2d', torch.Size([1, 1, 1, 2]))
    """

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if self.padding_mode == "zeros":
            return super()._conv_forward(input, weight, bias)
        return F.conv2d(
            _pad(input, _padding_amounts(self), self.padding_mode),
            weight,
            bias,
            self.stride,
            0,
            self.dilation,
            self.groups,
        )


def set_padding(model: nn.Module, mode: str) -> nn.Module:
    """Return a deep copy of ``model`` whose padded convolutions pad with ``mode``.

    Every ``nn.Conv2d`` with non-zero padding gets ``padding_mode=mode``; the caller's model is not
    changed. Zero padding lets a CNN find the image border and so encode absolute position;
    reflection, replication and wrapping (``"circular"``) give it less to go on. The weights, their
    names and the output shape are unchanged, so a checkpoint loads into either version (a
    checkpoint that :func:`~regionattack.models.save_checkpoint` was given ``"padding"`` in its
    metadata is converted again by :func:`~regionattack.models.build_from_checkpoint`).

    torch's reflect and circular padding need the padding to be smaller than (circular: at most)
    the input at that layer, and dilated convolutions pad by their dilation: smp's
    DeepLabV3-ResNet18 at 64x64 runs its rate-12 to rate-36 ASPP on an 8x8 map. Plain
    ``nn.Conv2d`` layers therefore become :class:`PaddedConv2d`, which repeats the reflection or
    wrap where the padding is too large for torch and is torch's padding elsewhere; subclasses of
    ``nn.Conv2d`` keep their class and torch's limits. Max-pooling padding is left alone (it pads
    with -inf, which a max never picks).

    Args:
        model: Any model (a :class:`~regionattack.NormalizedModel` too).
        mode: ``"zeros"`` (alias ``"zero"``), ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Returns:
        The converted copy, in the same training mode as ``model``.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module`` or ``mode`` not a string.
        ValueError: If ``mode`` is unknown; the message lists the choices.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 1))
        >>> padding_modes(set_padding(net, "reflect")), padding_modes(net)
        ({'reflect': 1}, {'zeros': 1})
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a string; got {type(mode).__name__}")
    mode = _ALIASES.get(mode, mode)
    if mode not in PADDING_MODES:
        raise ValueError(
            f"mode must be one of {list(PADDING_MODES)} (or 'zero' for 'zeros'); got {mode!r}"
        )
    converted = copy.deepcopy(model)
    for module in converted.modules():
        if not isinstance(module, nn.Conv2d):
            continue
        amounts = _padding_amounts(module)
        if not any(amounts):
            continue
        module.padding_mode = mode
        module._reversed_padding_repeated_twice = list(amounts)  # torch's F.pad amounts, refreshed
        if type(module) is nn.Conv2d and mode in _ANY_SIZE:
            module.__class__ = PaddedConv2d
        elif type(module) is PaddedConv2d and mode not in _ANY_SIZE:
            module.__class__ = nn.Conv2d
    return converted


def padding_modes(model: nn.Module) -> dict[str, int]:
    """Count the ``nn.Conv2d`` layers with non-zero padding per ``padding_mode``.

    Convolutions without padding are left out: their padding mode does nothing.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 1))
        >>> padding_modes(net)
        {'zeros': 1}
    """
    counts: dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and any(_padding_amounts(module)):
            counts[module.padding_mode] = counts.get(module.padding_mode, 0) + 1
    return counts
