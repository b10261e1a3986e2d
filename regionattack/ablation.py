"""Channel ablation, the paper's zeroing: silence chosen latent channels during forward passes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from regionattack._checks import (
    check_choice,
    check_nonnegative_float,
    check_seed,
    model_inputs,
)
from regionattack._state import frozen
from regionattack.latent import (
    checked_logits,
    edit_latent,
    find_layer,
    layer_output,
    model_logits,
    predicted_classes,
    select_latent,
)
from regionattack.ranking import ChannelRanking

__all__ = [
    "ChannelAblation",
    "ablate",
    "ablate_channels",
    "ablated_predictions",
    "channel_mask",
]

MODES = ("zero", "mean", "noise")

ChannelsLike = Sequence[int] | torch.Tensor | np.ndarray

_CHANNEL_FORMS = (
    "channel ids (a sequence of ints or an integer tensor, shared by the batch), per-sample ids "
    "((N, k) tensor or nested list), or a bool (K,) / (N, K) mask"
)


def _channel_tensor(channels: object) -> torch.Tensor:
    """``channels`` as a tensor (ids or bool mask); ``TypeError`` for anything else."""
    _reject_ranking(channels)
    if isinstance(channels, torch.Tensor):
        ids = channels
    elif isinstance(channels, (np.ndarray, Sequence)) and not isinstance(channels, (str, bytes)):
        try:
            ids = torch.as_tensor(channels)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"channels must be {_CHANNEL_FORMS}; got {channels!r:.80} ({error})"
            ) from None
    else:
        raise TypeError(f"channels must be {_CHANNEL_FORMS}; got {type(channels).__name__}")
    if ids.numel() and ids.dtype != torch.bool and (ids.is_floating_point() or ids.is_complex()):
        raise TypeError(f"channel ids must be integers; got dtype {ids.dtype}")  # [] is float
    return ids


def check_channels(
    channels: object, num_channels: int | None = None, *, allow_empty: bool = False
) -> torch.Tensor:
    """Check a channel selection; without ``num_channels``, as far as possible before it is known.

    Args:
        channels: The selection, see :func:`channel_mask`.
        num_channels: The latent's channel count K, when known: ids must then be below it.
        allow_empty: Accept a bool mask that selects nothing (an ablation that zeroes nothing:
            the clean prediction, k = 0 in a sweep).

    Returns:
        The selection as a tensor: (k,) or (N, k) integer ids, or a (K,) / (N, K) bool mask.

    Raises:
        TypeError: If ``channels`` is a ranking (pass ``ranking.top(k)``), not a selection (a
            string, a set, a ragged list ...), or holds non-integer ids.
        ValueError: If the selection is empty (for any sample), has more than two dimensions or
            holds an id out of range (negative, or from ``num_channels`` on).

    Example:
        >>> check_channels([3, 5]).tolist()
        [3, 5]
        >>> check_channels(torch.zeros(4, dtype=torch.bool))
        Traceback (most recent call last):
        ...
        ValueError: channels select no channel (the mask is all False)
    """
    ids = _channel_tensor(channels)
    if ids.numel() == 0:
        raise ValueError(
            f"channels must be a non-empty selection of channel ids; got shape {tuple(ids.shape)}"
        )
    if ids.ndim not in (1, 2):
        raise ValueError(
            f"channels must be (k,) / (N, k) ids or a (K,) / (N, K) mask; got shape "
            f"{tuple(ids.shape)}"
        )
    if ids.dtype == torch.bool and not allow_empty:
        empty = ~ids.any(dim=-1)
        if ids.ndim == 1 and bool(empty):
            raise ValueError("channels select no channel (the mask is all False)")
        if ids.ndim == 2 and bool(empty.any()):
            raise ValueError(
                f"channels select no channel for sample(s) {empty.nonzero()[:, 0].tolist()}"
            )
    elif ids.dtype != torch.bool:
        low, high = int(ids.min()), int(ids.max())
        if num_channels is not None and (low < 0 or high >= num_channels):
            raise ValueError(
                f"channel ids must lie in [0, {num_channels}); got range [{low}, {high}]"
            )
        if low < 0:
            raise ValueError(f"channel ids must be >= 0; got minimum {low}")
        _check_distinct(ids)
    return ids


def _check_distinct(ids: torch.Tensor) -> None:
    """Refuse repeated ids (per sample); a 0/1 integer tensor is pointed to a bool mask."""
    rows = ids.reshape(-1, ids.shape[-1]).sort(dim=-1).values
    if not bool((rows[:, 1:] == rows[:, :-1]).any()):
        return
    hint = ""
    if int(ids.min()) >= 0 and int(ids.max()) <= 1:
        hint = " (a 0/1 integer tensor is read as channel ids: pass a bool mask, e.g. .bool())"
    raise ValueError(f"channel ids must be distinct; got repeated ids{hint}")


def channel_mask(
    channels: ChannelsLike,
    num_channels: int,
    batch: int | None = None,
    *,
    allow_empty: bool = False,
) -> torch.Tensor:
    """Return a bool (N or 1, K) mask of the selected channels.

    Args:
        channels: Channel ids shared by all samples (a sequence or 1-D tensor), per-sample ids as a
            2-D (N, k) tensor, or a bool (K,) / (N, K) mask.
        num_channels: The latent's channel count K.
        batch: Batch size a per-sample selection must match (None accepts any).
        allow_empty: Accept an all-False mask (see :func:`check_channels`).

    Raises:
        ValueError: If an id is out of range, the selection is empty (for any sample) or shapes
            disagree.
        TypeError: If ``channels`` is a ranking (pass ``ranking.top(k)``), not a selection (see
            :func:`check_channels`) or not integer.

    Example:
        >>> channel_mask([0, 2], 4).int().tolist()
        [[1, 0, 1, 0]]
    """
    ids = check_channels(channels, num_channels, allow_empty=allow_empty)
    if ids.dtype == torch.bool:
        mask = ids if ids.ndim == 2 else ids[None]
        if mask.ndim != 2 or mask.shape[1] != num_channels:
            raise ValueError(
                f"a channel mask must be (K,) or (N, K) with K = {num_channels}; "
                f"got {tuple(ids.shape)}"
            )
    else:
        ids = ids.long() if ids.ndim == 2 else ids.long()[None]
        mask = torch.zeros(ids.shape[0], num_channels, dtype=torch.bool, device=ids.device)
        mask.scatter_(1, ids, True)
    if batch is not None and mask.shape[0] not in (1, batch):
        raise ValueError(
            f"channels are given for {mask.shape[0]} samples but the batch has {batch}"
        )
    return mask


def ablate(
    latent: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "zero",
    std: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return ``latent`` (N, K, h, w) with the channels in ``mask`` (N or 1, K) ablated.

    ``"zero"`` sets them to 0, ``"mean"`` to each channel's spatial mean (keeping what the channel
    says, removing *where*), ``"noise"`` adds Gaussian noise of standard deviation ``std``.

    Example:
        >>> z = torch.arange(8.0).view(1, 2, 2, 2)
        >>> ablate(z, torch.tensor([[False, True]]), "mean")[0, 1].tolist()
        [[5.5, 5.5], [5.5, 5.5]]
    """
    check_choice(mode, "mode", MODES)
    selected = mask.to(latent.device)[:, :, None, None]
    if mode == "zero":
        return latent.masked_fill(selected, 0)
    if mode == "mean":
        return torch.where(selected, latent.mean(dim=(2, 3), keepdim=True), latent)
    noise = torch.randn(latent.shape, generator=generator, device=latent.device, dtype=latent.dtype)
    return latent + selected * (std * noise)


def _reject_ranking(channels: object) -> None:
    if isinstance(channels, ChannelRanking):
        raise TypeError("pass the channels to ablate, e.g. ranking.top(k), not the whole ranking")


class ChannelAblation(nn.Module):
    """An ``nn.Module`` that runs ``model`` with chosen latent channels ablated.

    The wrapper owns no hook between calls: each forward pass installs one on the latent layer and
    removes it before returning, so the wrapped model stays usable on its own.

    Args:
        model: Segmentation model.
        channels: Channel ids (shared or per sample, see :func:`channel_mask`).
        layer: Latent layer name (default: the architecture's).
        mode: ``"zero"`` (default), ``"mean"`` or ``"noise"``.
        std: Noise standard deviation for ``mode="noise"``.
        seed: Seed for the noise (an int; each forward pass restarts from it); None draws fresh
            noise.

    Raises:
        TypeError: If ``channels`` is not a channel selection (see :func:`check_channels`) or
            ``seed`` is neither an int nor None.
        ValueError: For an unknown mode or layer, a negative ``std``, or an empty selection or
            negative channel id; ids beyond the channel count surface on the first forward pass.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2).eval()
        >>> ablated = ChannelAblation(net, [0, 1, 2])
        >>> ablated(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 2, 64, 64])
    """

    def __init__(
        self,
        model: nn.Module,
        channels: ChannelsLike,
        *,
        layer: str | None = None,
        mode: str = "zero",
        std: float = 1.0,
        seed: int | None = None,
    ):
        super().__init__()
        check_choice(mode, "mode", MODES)
        self.layer, _ = find_layer(model, layer)
        self.model = model
        self.mode = mode
        self.std = check_nonnegative_float(std, "std")
        self.seed = check_seed(seed)
        check_channels(channels)
        self.channels = channels

    def forward(self, images: torch.Tensor):
        """Run the wrapped model with the channels ablated."""
        with ablate_channels(
            self.model,
            self.channels,
            layer=self.layer,
            mode=self.mode,
            std=self.std,
            seed=self.seed,
        ):
            return self.model(images)

    def extra_repr(self) -> str:
        """Layer and mode."""
        return f"layer={self.layer!r}, mode={self.mode!r}"


@contextlib.contextmanager
def ablate_channels(
    model: nn.Module,
    channels: ChannelsLike,
    *,
    layer: str | None = None,
    mode: str = "zero",
    std: float = 1.0,
    seed: int | None = None,
) -> Iterator[nn.Module]:
    """Within the block, every forward pass of ``model`` has ``channels`` of the latent ablated.

    Args:
        model: Segmentation model; its hooks are removed on exit, also after an error.
        channels: Channel ids shared by all samples, per-sample ids (N, k), or a bool mask; see
            :func:`channel_mask`. Use ``ranking.top(k)`` for a ranking.
        layer: Latent layer name (default: the architecture's).
        mode: ``"zero"`` (the paper's), ``"mean"`` or ``"noise"``.
        std: Noise standard deviation for ``mode="noise"``.
        seed: Seed for the noise (an int or None); the generator restarts from it on entering the
            block.

    Yields:
        The model.

    Raises:
        TypeError: On entry, if ``channels`` is not a channel selection (see
            :func:`check_channels`) or ``seed`` is neither an int nor None.
        ValueError: On entry, for an unknown mode or layer, an empty selection or a negative id;
            channel ids beyond the channel count surface on the first forward pass, when the
            latent's channel count is known.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2).eval()
        >>> x = torch.rand(1, 3, 64, 64)
        >>> with ablate_channels(net, torch.arange(8)):
        ...     ablated = net(x)
        >>> bool((ablated == net(x)).all())
        False
    """
    check_choice(mode, "mode", MODES)
    check_nonnegative_float(std, "std")
    check_seed(seed)
    check_channels(channels)
    generators: dict[torch.device, torch.Generator] = {}

    def generator_for(device: torch.device) -> torch.Generator | None:
        if seed is None:
            return None
        if device not in generators:
            generators[device] = torch.Generator(device=device).manual_seed(seed)
        return generators[device]

    def edit(latent: torch.Tensor) -> torch.Tensor:
        mask = channel_mask(channels, latent.shape[1], latent.shape[0])
        return ablate(latent, mask, mode, std, generator_for(latent.device))

    with edit_latent(model, edit, layer):
        yield model


@contextlib.contextmanager
def replay_layer(module: nn.Module, output: object) -> Iterator[None]:
    """Within the block, ``module`` returns ``output`` instead of computing it (restored on exit).

    Example:
        >>> layer = nn.Identity()
        >>> with replay_layer(layer, torch.zeros(1)):
        ...     layer(torch.ones(1)).tolist()
        [0.0]
        >>> layer(torch.ones(1)).tolist()
        [1.0]
    """
    had_own_forward = "forward" in module.__dict__
    own_forward = module.__dict__.get("forward")
    module.forward = lambda *args, **kwargs: output  # type: ignore[method-assign]
    try:
        yield
    finally:
        if had_own_forward:
            module.forward = own_forward  # type: ignore[method-assign]
        else:
            del module.forward


def ablated_predictions(
    model: nn.Module,
    images: torch.Tensor,
    selections: Sequence[ChannelsLike],
    *,
    layer: str | None = None,
    mode: str = "zero",
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Predicted class maps of ``images`` under each channel selection, encoder run once.

    The network up to the latent layer runs once; for each selection only what follows the layer
    (decoder, head) runs, on the ablated latent. This is what makes ablation sweeps (many k values,
    rankings and random draws) cheap. The layer's ``forward`` is swapped for a replay of its cached
    output during the call and restored afterwards, also after an error; the model runs in eval mode
    and is left as it was.

    Args:
        model: Segmentation model.
        images: (N, 3, H, W) images in [0, 1].
        selections: Channel selections (see :func:`channel_mask`); an all-False bool mask zeroes
            nothing (the clean prediction, k = 0 of a sweep); ``[]`` entries are not allowed.
        layer: Latent layer name (default: the architecture's).
        mode: ``"zero"`` or ``"mean"`` (``"noise"`` would need a seed per selection; use
            :func:`ablate_channels`).
        reduce: Applied to each selection's (N, C, H, W) logits in place of the default
            ``argmax(dim=1)`` (e.g. a per-image loss), so that only its result is kept.

    Returns:
        One (N, H, W) int64 prediction per selection (or ``reduce``'s result).

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2)
        >>> x = torch.rand(2, 3, 64, 64)
        >>> fast = ablated_predictions(net, x, [[0, 1], [2]])
        >>> with ablate_channels(net, [2]):
        ...     slow = net.eval()(x).argmax(1)
        >>> [p.shape for p in fast], torch.equal(fast[1], slow)
        ([torch.Size([2, 64, 64]), torch.Size([2, 64, 64])], True)
    """
    check_choice(mode, "mode", ("zero", "mean"))
    images = model_inputs(model, images)
    for selection in selections:
        check_channels(selection, allow_empty=True)
    _, module = find_layer(model, layer)
    predictions = []
    with frozen(model), torch.no_grad():
        output = layer_output(model, images, layer)
        latent = select_latent(output)
        masks = [
            channel_mask(s, latent.shape[1], latent.shape[0], allow_empty=True) for s in selections
        ]
        with replay_layer(module, output):
            for mask in masks:
                with edit_latent(model, lambda z, m=mask: ablate(z, m, mode), layer, once=True):
                    logits = model_logits(model(images), images.shape[-2:])
                    predictions.append(
                        predicted_classes(checked_logits(logits))
                        if reduce is None
                        else reduce(logits)
                    )
    return predictions
