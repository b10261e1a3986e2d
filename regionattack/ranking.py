"""Rank the latent channels that encode position: the paper's flip method and a gradient method.

* ``method="flip"`` (Islam et al., 2021): run the network up to the latent on each image and on its
  mirror image, global-average-pool both latents, and compare. Per channel, the mean over images of
  ``|GAP(f(x)) - GAP(f(hflip(x)))|`` ranks *overall* position channels; the signed mean ranks
  ``"left"`` (descending) and ``"right"`` (ascending); a vertical flip gives ``"top"`` / ``"bottom"``.
* ``method="gradient"``: a first-order (activation x gradient) estimate of how much zeroing each
  channel raises the per-pixel segmentation loss. Zeroing channel ``c`` changes the latent by
  ``-z_c``, so the loss changes by about ``-sum_{h,w} z_c * dL/dz_c``. With a region, the loss is the
  mean cross-entropy inside the region and outside it, and the score is
  *(estimated damage inside) - |estimated change outside|*: region-specific channels hurt the
  region and leave the rest alone. With ``region=None`` the image is cut into a ``grid x grid`` lattice, the
  estimated damage to each cell is averaged over the images, and the score is the standard deviation
  of those cell averages across cells (see :func:`rank_channels`).

Only forward passes up to the latent are run for ``"flip"``; ``"gradient"`` runs one forward pass and
back-propagates only from the logits to the latent (parameters are frozen, the encoder is skipped).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from regionattack._checks import (
    IGNORE_INDEX,
    check_choice,
    check_images,
    check_k,
    check_labels,
    check_labels_in_range,
    check_positive_int,
    model_inputs,
    state_digest,
)
from regionattack._files import write_atomic
from regionattack._state import frozen
from regionattack.latent import (
    edit_latent,
    find_layer,
    latent_of,
    model_logits,
    predicted_classes,
    resize_logits,
)
from regionattack.normalization import unwrap
from regionattack.regions import RegionLike, as_mask, describe, grid_cells, num_masks

__all__ = [
    "ChannelRanking",
    "channel_statistics",
    "default_k",
    "flip_differences",
    "gradient_effects",
    "mean_weights",
    "network_digest",
    "pixel_loss",
    "rank_channels",
    "ranking_from_statistics",
    "region_scores",
]

METHODS = ("gradient", "flip")
FLIP_REGIONS = (None, "left", "right", "top", "bottom")


@dataclass(frozen=True)
class ChannelRanking:
    """Latent channels ordered from the most to the least position-encoding.

    Attributes:
        indices: (K,) int64 channel ids, most position-encoding first.
        scores: (K,) float32 score of each channel, indexed by channel id.
        method: ``"flip"`` or ``"gradient"``.
        region: Description of the region the ranking targets (``"overall"`` for none).
        layer: Name of the latent layer.
        num_images: Number of images the scores average over.
        model_digest: :func:`network_digest` of the model the ranking was made on (None when
            unknown, e.g. a file saved before the field existed). Attacks given the ranking check
            it against their model, since channel ids mean nothing on another network.

    Example:
        >>> ranking = ChannelRanking.from_scores(torch.tensor([0.1, 0.9, 0.5]), "flip", "overall",
        ...                                      "encoder", 4)
        >>> ranking.top(2).tolist()
        [1, 2]
    """

    indices: torch.Tensor
    scores: torch.Tensor
    method: str
    region: str
    layer: str
    num_images: int
    model_digest: str | None = None

    @classmethod
    def from_scores(
        cls,
        scores: torch.Tensor,
        method: str,
        region: str,
        layer: str,
        num_images: int,
        model_digest: str | None = None,
    ) -> ChannelRanking:
        """Build a ranking that orders channels by descending score (ties by channel id)."""
        scores = scores.detach().float().cpu()
        indices = torch.argsort(scores, descending=True, stable=True)
        return cls(indices, scores, method, region, layer, num_images, model_digest)

    @property
    def num_channels(self) -> int:
        """Number of latent channels."""
        return int(self.scores.numel())

    def top(self, k: int) -> torch.Tensor:
        """Return the ids of the ``k`` highest-ranked channels.

        Raises:
            ValueError: If ``k`` is not in ``[1, num_channels]``.
        """
        return self.indices[: check_k(k, self.num_channels)].clone()

    def save(self, path: str | os.PathLike) -> None:
        """Write the ranking to ``path`` as JSON (atomically: a temporary file is renamed)."""
        path = Path(path)
        record = {
            "indices": self.indices.tolist(),
            "scores": self.scores.tolist(),
            "method": self.method,
            "region": self.region,
            "layer": self.layer,
            "num_images": self.num_images,
            "model_digest": self.model_digest,
        }
        write_atomic(path, json.dumps(record))

    @classmethod
    def load(cls, path: str | os.PathLike) -> ChannelRanking:
        """Read a ranking written by :meth:`save`; every field is checked.

        Files written before ``model_digest`` existed load with ``model_digest=None``.

        Raises:
            ValueError: If the file is not valid JSON or not a saved ranking, naming the file and
                the bad field: a missing key, scores that are not finite numbers, indices that are
                not a permutation of the channel ids ordered by descending score, an unknown
                method, an empty region or layer, a ``num_images`` that is not a positive int, or
                a ``model_digest`` that is not a hex string.
        """
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a UTF-8 JSON file ({error})") from None
        return cls(**_checked_record(record, path))


_KEYS = ("indices", "scores", "method", "region", "layer", "num_images")


def _finite_float(value: float) -> bool:
    """Whether ``value`` is a finite float32-representable score (a 400-digit int is not)."""
    try:
        return math.isfinite(value) and abs(float(value)) <= torch.finfo(torch.float32).max
    except OverflowError:
        return False


def _checked_record(record: object, path: str | os.PathLike) -> dict:
    """The fields of a saved ranking, validated (the errors name ``path`` and the field)."""
    if not isinstance(record, dict):
        raise ValueError(
            f"{path} is not a saved ChannelRanking: expected a JSON object; got "
            f"{type(record).__name__}"
        )
    missing = [key for key in _KEYS if key not in record]
    if missing:
        raise ValueError(
            f"{path} is not a saved ChannelRanking (expected keys {list(_KEYS)}); missing {missing}"
        )

    def bad(field: str, expected: str, got: object) -> ValueError:
        return ValueError(f"{path}: {field} must be {expected}; got {got!r}")

    def is_int(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    scores, indices = record["scores"], record["indices"]
    if not isinstance(scores, list) or not scores:
        raise bad("scores", "a non-empty list of finite numbers", scores)
    for i, value in enumerate(scores):
        if not (is_int(value) or isinstance(value, float)) or not _finite_float(value):
            raise bad(f"scores[{i}]", "a finite number", value)
    if not isinstance(indices, list) or not all(is_int(i) for i in indices):
        raise bad("indices", "a list of int channel ids", indices)
    if len(indices) != len(scores):
        raise ValueError(
            f"{path}: indices and scores must have one entry per channel; got {len(indices)} "
            f"indices and {len(scores)} scores"
        )
    if sorted(indices) != list(range(len(scores))):
        raise bad("indices", f"a permutation of the channel ids 0..{len(scores) - 1}", indices)
    scores_t = torch.tensor(scores, dtype=torch.float32)
    indices_t = torch.tensor(indices, dtype=torch.long)
    ordered = scores_t[indices_t]
    if not bool((ordered[:-1] >= ordered[1:]).all()):
        raise bad("indices", "ordered by descending score", indices)
    if record["method"] not in METHODS:
        raise bad("method", f"one of {list(METHODS)}", record["method"])
    for field in ("region", "layer"):
        if not isinstance(record[field], str) or not record[field]:
            raise bad(field, "a non-empty string", record[field])
    if not is_int(record["num_images"]) or record["num_images"] <= 0:
        raise bad("num_images", "a positive int", record["num_images"])
    digest = record.get("model_digest")
    if digest is not None and not (isinstance(digest, str) and re.fullmatch("[0-9a-f]+", digest)):
        raise bad("model_digest", "a hex string or null", digest)
    return {
        "indices": indices_t,
        "scores": scores_t,
        "method": record["method"],
        "region": record["region"],
        "layer": record["layer"],
        "num_images": record["num_images"],
        "model_digest": digest,
    }


def network_digest(model: nn.Module) -> str:
    """Identity of the network a ranking is made on: :func:`state_digest` of the unwrapped model.

    :class:`~regionattack.NormalizedModel` wrappers hold no weights, so a model and its wrapped
    version share a digest. Reads the whole state once: call it once per ranking or attack.

    Example:
        >>> from regionattack import with_normalization
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter()
        >>> network_digest(with_normalization(net, (0.5,), (0.2,))) == network_digest(net)
        True
    """
    return state_digest(unwrap(model))


def check_ranking_matches(ranking: ChannelRanking, model: nn.Module, layer: str) -> None:
    """Raise unless ``ranking`` was made on ``layer`` of ``model`` (when it records a digest).

    Channel ids of a ranking name channels of one layer of one network; on another they are
    arbitrary. To reuse the channels on purpose, pass ``ranking.top(k)`` as channel ids.

    Raises:
        ValueError: Naming the layer or the model digest that differs.
    """
    reuse = "to reuse its channels on purpose, pass ranking.top(k) as channel ids"
    if ranking.layer != layer:
        raise ValueError(
            f"the ranking was made on layer {ranking.layer!r} but the attack's latent layer is "
            f"{layer!r}; pass layer={ranking.layer!r}, or {reuse}"
        )
    if ranking.model_digest is not None:
        digest = network_digest(model)
        if digest != ranking.model_digest:
            raise ValueError(
                f"the ranking was made on another model (weights digest {ranking.model_digest}) "
                f"than the attack's (digest {digest}); rank the channels on this model, or {reuse}"
            )


def iterate_batches(
    data: torch.Tensor | Iterable,
    labels: torch.Tensor | None = None,
    max_images: int | None = None,
    batch_size: int = 16,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield ``(images, labels or None)`` batches from a tensor or an iterable / DataLoader.

    The iterable may yield image tensors or ``(images, labels, ...)`` tuples. At most
    ``max_images`` images are yielded in total.

    Example:
        >>> [b.shape[0] for b, _ in iterate_batches(torch.zeros(5, 3, 2, 2), batch_size=2)]
        [2, 2, 1]
    """
    if max_images is not None:
        check_positive_int(max_images, "max_images")
    if isinstance(data, torch.Tensor):
        check_images(data)
        if labels is not None:
            labels = check_labels(labels, data)
        data = [
            (data[i : i + batch_size], None if labels is None else labels[i : i + batch_size])
            for i in range(0, data.shape[0], batch_size)
        ]
    elif labels is not None:
        raise ValueError("labels= is only accepted with a tensor of images; yield them from data")
    seen = 0
    for item in data:
        images, batch_labels = _batch_parts(item)
        if max_images is not None and seen + images.shape[0] > max_images:
            images = images[: max_images - seen]
            batch_labels = None if batch_labels is None else batch_labels[: images.shape[0]]
        if images.shape[0] == 0:
            break
        check_images(images)
        yield images, None if batch_labels is None else check_labels(batch_labels, images)
        seen += images.shape[0]
        if max_images is not None and seen >= max_images:
            break


def _batch_parts(item: object) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(images, labels or None)`` of one item a loader yields (more fields are ignored)."""
    if isinstance(item, (tuple, list)) and item:
        images, labels = item[0], item[1] if len(item) > 1 else None
    else:
        images, labels = item, None
    if not isinstance(images, torch.Tensor):
        found = type(item).__name__
        if isinstance(item, dict):
            found = f"a dict with keys {sorted(map(str, item))} (pass its images and labels)"
        elif isinstance(item, (tuple, list)):
            found = f"a {type(item).__name__} whose first item is {type(images).__name__}"
        raise TypeError(
            f"data must yield image batches or (images, labels) pairs of tensors; got {found}"
        )
    return images, labels


def flip_differences(
    model: nn.Module, images: torch.Tensor, *, layer: str | None = None, vertical: bool = False
) -> torch.Tensor:
    """Return ``GAP(f(x)) - GAP(f(flip(x)))`` per image and channel, shape (N, K).

    Image and mirror image go through the network in one batch, up to the latent only.
    The caller's model is left as it was (eval mode is used inside).

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2)
        >>> flip_differences(net, torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 8])
    """
    images = model_inputs(model, images)
    flipped = images.flip(-2 if vertical else -1)
    with frozen(model), torch.inference_mode():
        pooled = latent_of(model, torch.cat([images, flipped]), layer).float().mean(dim=(2, 3))
    return pooled[: images.shape[0]] - pooled[images.shape[0] :]


def pixel_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy (N, H, W); pixels labelled 255 get 0.

    Logits of another size than the targets are resized bilinearly first.

    Example:
        >>> pixel_loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 255]]])).tolist()
        [[[0.6931471824645996, 0.0]]]
    """
    logits = resize_logits(logits, targets.shape[-2:])
    return F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="none")


def mean_weights(masks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Turn bool masks (M, N or 1, H, W) into weights that average over each mask's valid pixels.

    Example:
        >>> w = mean_weights(torch.tensor([[[[True, True]]]]), torch.tensor([[[True, False]]]))
        >>> w.tolist()
        [[[[1.0, 0.0]]]]
    """
    selected = (masks & valid).float()
    return selected / selected.sum(dim=(-2, -1), keepdim=True).clamp_min(1)


def gradient_effects(
    model: nn.Module,
    images: torch.Tensor,
    weights: torch.Tensor,
    *,
    targets: torch.Tensor | None = None,
    layer: str | None = None,
) -> torch.Tensor:
    """First-order estimate of the loss increase from zeroing each channel, per image and map.

    For each pixel-weight map ``w_m`` the loss is ``L_m = sum_px w_m * CE(px)``; zeroing channel ``c``
    changes it by about ``-sum_{h,w} z_c * dL_m/dz_c``. One forward pass is run; the backward pass
    stops at the latent.

    Args:
        model: Segmentation model returning (N, C, H, W) logits.
        images: (N, 3, H, W) images in [0, 1].
        weights: (M, N or 1, H, W) float pixel weights (e.g. from :func:`mean_weights`).
        targets: (N, H, W) labels (255 = ignore); the model's clean predictions when None.
        layer: Latent layer name (default: the architecture's).

    Returns:
        (N, M, K) estimated loss increases.

    Raises:
        ValueError: After the forward pass and before the backward one, if the logits are larger
            than the images (smaller ones are upsampled) or ``targets`` hold a class the model
            does not predict.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2)
        >>> gradient_effects(net, torch.rand(2, 3, 64, 64), torch.ones(3, 1, 64, 64)).shape
        torch.Size([2, 3, 8])
    """
    store: dict[str, torch.Tensor] = {}

    def detach(latent: torch.Tensor) -> torch.Tensor:
        store["latent"] = latent.detach().requires_grad_(True)
        return store["latent"]

    with frozen(model), torch.enable_grad(), edit_latent(model, detach, layer, once=True):
        logits = model_logits(model(images), images.shape[-2:])
        if targets is not None:
            check_labels_in_range(targets, logits.shape[1])
        latent = store["latent"]
        if targets is None:
            targets = predicted_classes(logits.detach())
        losses = torch.einsum(
            "nhw,mnhw->m", pixel_loss(logits, targets), weights.expand(-1, *targets.shape)
        )
        grads = torch.stack(
            [
                torch.autograd.grad(losses[m], latent, retain_graph=m + 1 < len(losses))[0]
                for m in range(len(losses))
            ],
            dim=1,
        )
    return -(grads * latent.detach().unsqueeze(1)).float().sum(dim=(-2, -1))


def region_scores(inside: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """Score of region-specific channels: damage inside minus the size of the change outside.

    ``inside`` / ``outside`` are estimated loss increases from zeroing each channel. A channel whose
    zeroing *improves* the outside is not region-specific either (it changes what it should leave
    alone), so the outside term counts in absolute value.

    Example:
        >>> region_scores(torch.tensor([1.0, 1.0, 0.5]), torch.tensor([0.2, -0.2, 0.0])).tolist()
        [0.800000011920929, 0.800000011920929, 0.5]
    """
    return inside - outside.abs()


def rank_channels(
    model: nn.Module,
    data: torch.Tensor | Iterable,
    *,
    method: str = "gradient",
    region: RegionLike | None = None,
    layer: str | None = None,
    labels: torch.Tensor | None = None,
    max_images: int | None = None,
    grid: int = 3,
    batch_size: int = 16,
) -> ChannelRanking:
    """Rank the latent channels by how much position (overall or of a region) they encode.

    Scores, per method (``E`` is the mean over images):

    * ``"flip"``, overall: ``E|GAP(f(x)) - GAP(f(hflip x))|``; ``"left"``: ``E[GAP(f(x)) -
      GAP(f(hflip x))]``; ``"right"``: its negative; ``"top"`` / ``"bottom"``: the same with a
      vertical flip.
    * ``"gradient"`` with a region: ``E[D_in] - |E[D_out]|`` where ``D_in`` / ``D_out`` are the
      first-order estimates of the rise of the mean cross-entropy inside / outside the region when
      the channel is zeroed (w.r.t. ``labels``, or the model's clean predictions when none are
      given). The outside term counts in absolute value: a channel whose zeroing changes the
      outside in either direction is not specific to the region (see :func:`region_scores`).
    * ``"gradient"`` overall (``region=None``): with ``D_g`` the estimated rise of the mean
      cross-entropy in cell ``g`` of a ``grid x grid`` lattice, the score is the standard deviation
      over cells of ``E[D_g]``. Averaging over images *before* comparing cells cancels effects that
      follow the content (a "car" channel hurts wherever cars happen to be) and keeps effects tied to a
      fixed place in the image - position. A channel that hurts every cell alike scores 0.

    Args:
        model: Segmentation model (any :class:`~regionattack.NormalizedModel` wrapper is seen
            through); left exactly as it was. Logits smaller than the images are upsampled
            to them (:func:`~regionattack.latent.model_logits`).
        data: (N, 3, H, W) images in [0, 1], or an iterable / DataLoader yielding images or
            ``(images, labels)``. Images of any float dtype are converted to float32 (as the
            attacks do), on the model's device.
        method: ``"gradient"`` (default) or ``"flip"``.
        region: Region name or mask; None ranks overall position channels. ``"flip"`` supports only
            None, ``"left"``, ``"right"``, ``"top"`` and ``"bottom"``. Per-sample (N, H, W) masks
            need ``data`` to be a tensor of exactly N images (after ``max_images``).
        layer: Latent layer name (default: the architecture's, see :mod:`regionattack.latent`).
        labels: (N, H, W) labels for tensor ``data`` (gradient method; 255 = ignore).
        max_images: Use at most this many images.
        grid: Cells per side for the overall gradient ranking.
        batch_size: Batch size when ``data`` is a tensor.

    Returns:
        The :class:`ChannelRanking`, with the :func:`network_digest` of ``model``.

    Raises:
        ValueError: For an unknown method, a region the method cannot rank, bad images/labels/masks,
            or no images; for ``"gradient"``, after the first forward pass (before any backward
            one), labels holding a class the model does not predict or logits larger than the
            images.
        TypeError: For images that are not a float tensor, or labels that are not integers.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2)
        >>> ranking = rank_channels(net, torch.rand(2, 3, 64, 64), method="flip")
        >>> ranking.method, ranking.region, ranking.num_channels, ranking.num_images
        ('flip', 'overall', 8, 2)
    """
    layer_name, _ = find_layer(model, layer)
    total, seen = channel_statistics(
        model,
        data,
        method=method,
        region=region,
        layer=layer,
        labels=labels,
        max_images=max_images,
        grid=grid,
        batch_size=batch_size,
    )
    return ranking_from_statistics(
        total,
        seen,
        method=method,
        region=region,
        layer=layer_name,
        model_digest=network_digest(model),
    )


def channel_statistics(
    model: nn.Module,
    data: torch.Tensor | Iterable,
    *,
    method: str = "gradient",
    region: RegionLike | None = None,
    layer: str | None = None,
    labels: torch.Tensor | None = None,
    max_images: int | None = None,
    grid: int = 3,
    batch_size: int = 16,
) -> tuple[torch.Tensor, int]:
    """Sum over images of the per-image channel statistics behind :func:`rank_channels`.

    Sums add across image sets, so shards of a dataset (e.g. one per process under
    ``torch.distributed``) can be summed before :func:`ranking_from_statistics` turns them into a
    ranking equal to one made on all images at once. Arguments as :func:`rank_channels`, which
    validates them.

    Returns:
        ``(total, num_images)``: total is (K,) for ``"flip"``, (grid*grid, K) for overall
        ``"gradient"`` and (2, K) (inside, outside) for ``"gradient"`` with a region.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net, x = TinySegmenter(num_classes=2, latent_channels=4), torch.rand(4, 3, 16, 16)
        >>> a, n_a = channel_statistics(net, x[:2], method="flip")
        >>> b, n_b = channel_statistics(net, x[2:], method="flip")
        >>> whole = rank_channels(net, x, method="flip")
        >>> torch.allclose(ranking_from_statistics(a + b, n_a + n_b, method="flip").scores,
        ...                whole.scores)
        True
    """
    check_choice(method, "method", METHODS)
    check_positive_int(grid, "grid")
    check_positive_int(batch_size, "batch_size")
    if method == "flip" and not (
        region is None or (isinstance(region, str) and region in FLIP_REGIONS)
    ):
        raise ValueError(
            f"method='flip' ranks only overall, 'left', 'right', 'top' and 'bottom'; got region "
            f"{describe(region)!r} (use method='gradient' for other regions)"
        )
    if region is not None and num_masks(region) > 1:
        count = data.shape[0] if isinstance(data, torch.Tensor) else None
        if count is not None and max_images is not None:
            count = min(count, max_images)
        if count != num_masks(region):
            raise ValueError(
                f"per-sample region masks need a tensor of exactly as many images; got "
                f"{num_masks(region)} masks for "
                + ("an iterable" if count is None else f"{count} images")
            )
    total: torch.Tensor | None = None
    seen = 0
    for images, batch_labels in iterate_batches(data, labels, max_images, batch_size):
        images = model_inputs(model, images)
        if method == "flip":
            diffs = flip_differences(
                model, images, layer=layer, vertical=region in ("top", "bottom")
            )
            sign = -1.0 if region in ("right", "bottom") else 1.0
            batch_sum = diffs.abs().sum(0) if region is None else sign * diffs.sum(0)
        else:
            targets = None if batch_labels is None else batch_labels.to(images.device)
            size = tuple(images.shape[-2:])
            if region is None:
                masks = grid_cells(size, min(grid, size[0]), min(grid, size[1]))[:, None]
            else:
                inside = as_mask(region, size)
                if inside.shape[0] > 1:
                    inside = inside[seen : seen + images.shape[0]]
                masks = torch.stack([inside, ~inside])
            masks = masks.to(images.device)
            valid = torch.ones_like(masks[0]) if targets is None else (targets != IGNORE_INDEX)
            effects = gradient_effects(
                model, images, mean_weights(masks, valid), targets=targets, layer=layer
            )
            batch_sum = effects.sum(0)
        total = batch_sum if total is None else total + batch_sum
        seen += images.shape[0]
    if total is None:
        raise ValueError("data yielded no images")
    return total, seen


def ranking_from_statistics(
    total: torch.Tensor,
    num_images: int,
    *,
    method: str = "gradient",
    region: RegionLike | None = None,
    layer: str = "encoder",
    model_digest: str | None = None,
) -> ChannelRanking:
    """Turn the summed statistics of :func:`channel_statistics` into a :class:`ChannelRanking`.

    Args:
        total: Summed statistics from :func:`channel_statistics` (over all shards).
        num_images: Number of images they sum over.
        method: The method they were computed with.
        region: The region they were computed for.
        layer: Name of the latent layer.
        model_digest: :func:`network_digest` of the model, recorded so attacks can refuse the
            ranking on another model; None records nothing (no check).

    Raises:
        ValueError: If the method is unknown, ``num_images`` is not positive or a score is not
            finite.
        TypeError: If ``model_digest`` is neither a str nor None.
    """
    check_choice(method, "method", METHODS)
    check_positive_int(num_images, "num_images")
    if model_digest is not None and not isinstance(model_digest, str):
        raise TypeError(f"model_digest must be a str or None; got {type(model_digest).__name__}")
    mean = total / num_images
    if method == "flip":
        scores = mean
    elif region is None:
        scores = mean.std(dim=0, unbiased=False)
    else:
        scores = region_scores(mean[0], mean[1])
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("channel scores are not finite; check the model's outputs")
    return ChannelRanking.from_scores(
        scores, method, describe(region), layer, num_images, model_digest
    )


def default_k(num_channels: int, fraction: float = 0.05) -> int:
    """Default number of channels to attack or ablate: 5% of the channels, at least 1.

    The paper zeroes 100 of ResNet-50's 2048 channels, about 5%.

    Example:
        >>> default_k(512)
        26
    """
    return max(1, math.ceil(fraction * num_channels))
