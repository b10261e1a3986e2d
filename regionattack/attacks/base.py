"""A ``torchattacks.Attack`` adapted to segmentation: per-pixel labels, exception-safe state.

torchattacks' base class assumes one label per image in several places; this class replaces or
guards each of them:

* ``__call__`` restores every module's training flag, every parameter's ``requires_grad`` and every
  buffer in ``finally`` (torchattacks restores only the top-level flag, and not after an error);
  parameters are frozen during the attack, so backward passes compute input gradients only.
* targeted modes build per-pixel target maps (``set_mode_targeted_by_label`` takes (N, H, W) target
  maps; random and least-likely targets are drawn per pixel);
* :meth:`save` reports per-pixel accuracy and region mIoU instead of per-image accuracy;
* ``set_normalization_used`` is refused on a model that already normalises its inputs (a
  :class:`~regionattack.NormalizedModel`), and ``set_mode_targeted_least_likely`` checks
  ``kth_min`` (an int in [1, K - 1]) instead of asserting;
* ``torchattacks.MultiAttack``, which compares one label per image, is refused with a ``TypeError``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch
import torchattacks
from torch import nn
from torchattacks.attack import Attack

from regionattack._checks import (
    IGNORE_INDEX,
    check_choice,
    check_images,
    check_labels,
    check_labels_in_range,
    check_positive_int,
    check_radius,
    check_seed,
    check_tensor,
    model_dtype,
)
from regionattack._files import torch_save_atomic
from regionattack._state import frozen
from regionattack.attacks.objectives import project
from regionattack.attacks.optimizers import OPTIMIZERS, ascend
from regionattack.latent import checked_logits, layer_hook, model_logits, predicted_classes
from regionattack.metrics import MaskedConfusions
from regionattack.normalization import NormalizedModel, checked_mean_std
from regionattack.regions import RegionLike, as_mask

logger = logging.getLogger(__name__)

_NORMALIZATION_SLACK = 1e-4


@dataclasses.dataclass
class Problem:
    """One call's attack problem, set up once by :meth:`SegmentationAttack.forward`.

    Attributes:
        images: (N, C, H, W) float32 images in [0, 1] on the model's device.
        labels: (N, H, W) validated labels (255 = ignore), or None.
        clean: (N, H, W) clean predictions; None for an attack with ``needs_clean = False``.
        inside: (N or 1, H, W) bool mask of the region to break (all pixels for no region).
        allowed: (N or 1, H, W) bool mask of the pixels the perturbation may touch, or None.
        latent: The latent layer's output in the clean pass, for an attack that
            ``captures_latent``; else None.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    clean: torch.Tensor | None
    inside: torch.Tensor
    allowed: torch.Tensor | None
    latent: object | None = None


class SegmentationAttack(Attack):
    """Base class of the L-inf PGD segmentation attacks.

    :meth:`forward` sets the problem up once (images checked and moved, labels checked, the clean
    prediction made or taken from the caller, the region and the allowed pixels as masks: a
    :class:`Problem`); subclasses implement :meth:`perturb`, which builds a per-image objective
    and ascends it with :meth:`pgd`. Images are (N, C, H, W)
    in [0, 1] (or normalised, after ``set_normalization_used``, as in torchattacks); labels are
    (N, H, W) int64 with 255 = ignore, or None to attack the model's own clean predictions.

    Args:
        name: Attack name shown by ``repr``.
        model: Segmentation model returning (N, K, H, W) logits (tensor, dict ``"out"`` or tuple).
        eps: L-inf radius in image units, in [0, 1] (``8 / 255``, not ``8``), also when
            ``set_normalization_used`` is set.
        alpha: Step size, in image units in [0, 1]; None (default): ``eps / 4``.
        steps: Number of steps.
        random_start: Start from a uniform random point in the allowed ball.
        seed: Seed for the random start (reproducible runs), an int; None uses torch's global
            generator.
        optimizer: ``"pgd"`` (fixed step ``alpha``), ``"pgd-decay"`` (the step decays
            linearly from ``2 * alpha`` to ``2 * alpha / steps``, about ``alpha`` on average)
            or ``"apgd"`` (APGD: step from ``2 * eps`` halved where the
            objective stalls, momentum, the best iterate by the objective; ``alpha`` is not
            used), see :mod:`regionattack.attacks.apgd`.

    Class attributes read by the registry and the bench (:mod:`regionattack.attacks.registry`):
    ``name_options`` (keyword -> the values that may be given in brackets after the attack's
    name), ``repeatable_name_options`` (keywords that collect several bracket values),
    ``whole_image`` (True when the attack perturbs for the whole image whatever region it is
    given, so results report it as an image-wide attack), ``ranking_argument`` (the keyword
    through which the attack takes a :class:`~regionattack.ChannelRanking` of its region) and
    ``classes_argument`` (the keyword through which a class-hiding attack takes the class ids
    to hide).

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``, a setting is not a number / int, or
            ``seed`` is neither an int nor None.
        ValueError: If ``eps`` or ``alpha`` is negative or above 1 (pixel units, e.g. 8 for
            8/255), or ``steps`` is not positive.
    """

    name_options: ClassVar[dict[str, tuple[str, ...]]] = {}
    repeatable_name_options: ClassVar[tuple[str, ...]] = ()
    whole_image: ClassVar[bool] = False
    ranking_argument: ClassVar[str | None] = None
    classes_argument: ClassVar[str | None] = None
    needs_clean: ClassVar[bool] = True
    captures_latent: bool = False

    def __init__(
        self,
        name: str,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        random_start: bool = True,
        seed: int | None = None,
        optimizer: str = "pgd",
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
        super().__init__(name, model)
        self.eps = check_radius(eps, "eps")
        self.alpha = self.eps / 4 if alpha is None else check_radius(alpha, "alpha", kind="step")
        self.steps = check_positive_int(steps, "steps")
        self.random_start = bool(random_start)
        self.seed = check_seed(seed)
        self.optimizer = check_choice(optimizer, "optimizer", OPTIMIZERS)
        self.supported_mode = ["default", "targeted"]

    # ------------------------------------------------------------------ torchattacks entry point
    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None = None, **kwargs):
        """Return adversarial images on the input's device and dtype; the model is left as it was."""
        caller = sys._getframe(1).f_locals.get("self")
        if isinstance(caller, torchattacks.MultiAttack):
            raise TypeError(
                "torchattacks.MultiAttack compares one label per image and cannot combine "
                "segmentation attacks; run the attacks one after another instead"
            )
        with frozen(self.model, eval_mode=False):
            self._change_model_mode(self.model.training)
            if self._normalization_applied is not True:
                return self.forward(images, labels, **kwargs)
            self._set_normalization_applied(False)
            try:
                adv = self.forward(self._to_unit_range(images), labels, **kwargs)
            finally:
                self._set_normalization_applied(True)
            return self.normalize(adv)

    def _to_unit_range(self, images: torch.Tensor) -> torch.Tensor:
        images = check_tensor(images, "images")
        channels = self.normalization_used["mean"].numel()
        if images.ndim != 4 or images.shape[1] != channels:
            raise ValueError(
                f"images must be (N, {channels}, H, W) to match the {channels} means and stds of "
                f"set_normalization_used; got shape {tuple(images.shape)}"
            )
        raw = self.inverse_normalize(images)  # called after _normalization_applied is cleared
        inside = (raw >= -_NORMALIZATION_SLACK) & (raw <= 1 + _NORMALIZATION_SLACK)
        return raw.clamp(0, 1) if bool(inside.all()) else raw  # out of range: check_images raises

    def set_normalization_used(self, mean, std) -> None:
        """Declare that images arrive normalised with ``mean`` / ``std`` (torchattacks' convention).

        Raises:
            ValueError: If the model already normalises its inputs (it is or contains a
                :class:`~regionattack.NormalizedModel`): the images would be normalised twice;
                or for a ``mean`` / ``std`` that :func:`~regionattack.normalization.checked_mean_std`
                refuses (a std of 0, NaN, counts that differ).
        """
        checked_mean_std(mean, std)
        if any(isinstance(module, NormalizedModel) for module in self.model.modules()):
            raise ValueError(
                "the model already normalises its inputs (it contains a NormalizedModel, made by "
                "with_normalization), so set_normalization_used would normalise them twice; pass "
                "images in [0, 1] to this attack, or attack regionattack.normalization.unwrap("
                "model) with set_normalization_used"
            )
        super().set_normalization_used(mean, std)

    def set_mode_targeted_least_likely(self, kth_min: int = 1, quiet: bool = False) -> None:
        """Target, on each pixel, the ``kth_min``-th least likely class other than the label.

        ``kth_min`` must be in ``[1, K - 1]`` for a model with K classes (the label is excluded);
        K is known only on the first call, which raises before any attack step when it is not.

        Raises:
            TypeError: If ``kth_min`` is not an int.
            ValueError: If ``kth_min`` is not positive.
        """
        check_positive_int(kth_min, "kth_min")
        super().set_mode_targeted_least_likely(kth_min, quiet)

    def network(self) -> nn.Module:
        """The model as the attack sees it: with torchattacks' normalisation applied when set."""
        if self.normalization_used is not None and self._normalization_applied is False:
            mean = self.normalization_used["mean"].flatten().tolist()
            std = self.normalization_used["std"].flatten().tolist()
            return NormalizedModel(self.model, mean, std)
        return self.model

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) logits of images in [0, 1] (normalised first when configured)."""
        return model_logits(self.get_logits(images), images.shape[-2:])

    # ------------------------------------------------------------------ the problem
    def forward(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        region: RegionLike | None = None,
        clean: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return adversarial images; ``region`` overrides the attack's region for this call.

        ``clean``: the model's (N, H, W) predictions on ``images`` when the caller already has
        them; they save the clean forward pass (an attack that captures the latent still runs
        it).
        """
        problem = self.set_up(images, labels, region, clean)
        return self.finish(self.perturb(problem), images)

    def set_up(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        region: RegionLike | None,
        clean: torch.Tensor | None,
    ) -> Problem:
        """Check the inputs and make what every step needs (see :class:`Problem`)."""
        latent: dict[str, object] = {}
        if not self.needs_clean:
            prepared = self.prepare_images(images)
            labels = None if labels is None else check_labels(labels, prepared)
            clean = None
        elif self.captures_latent:  # keep the latent layer's output of the clean forward pass
            capture = layer_hook(
                self.network(),
                lambda out: latent.update(out=out),
                getattr(self, "layer", None),
                once=True,
            )
            with capture:
                prepared, labels, clean = self.prepare(images, labels)
        else:
            prepared, labels, clean = self.prepare(images, labels, clean)
        chosen = getattr(self, "region", None) if region is None else region
        return Problem(
            images=prepared,
            labels=labels,
            clean=clean,
            inside=self.inside_mask(chosen, prepared),
            allowed=self.perturbation_mask(prepared),
            latent=latent.get("out"),
        )

    def perturb(self, problem: Problem) -> torch.Tensor:
        """The adversarial images of a set-up problem, in the model's space (float32)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ regions
    @staticmethod
    def check_region_names(*regions: RegionLike | None) -> None:
        """Reject unknown region names when the attack is built rather than on its first call."""
        for region in regions:
            if isinstance(region, str):
                as_mask(region, (2, 2))

    @staticmethod
    def inside_mask(region: RegionLike | None, images: torch.Tensor) -> torch.Tensor:
        """(N or 1, H, W) bool mask of the attacked region; the whole image when None."""
        size = tuple(images.shape[-2:])
        if region is None:
            return torch.ones(1, *size, dtype=torch.bool, device=images.device)
        return as_mask(region, size, images.shape[0], images.device)

    def perturbation_mask(self, images: torch.Tensor) -> torch.Tensor | None:
        """(N, H, W) pixels ``perturb_region`` lets the perturbation touch; None: all of them."""
        region = getattr(self, "perturb_region", None)
        if region is None:
            return None
        return as_mask(region, tuple(images.shape[-2:]), images.shape[0], images.device)

    # ------------------------------------------------------------------ per-pixel targets
    def _device_of(self, images: torch.Tensor) -> torch.device:
        return self.device if self.device is not None else images.device

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        """Validate images; return them on the model's device in its dtype (float32 or float64)."""
        images = check_images(images)
        return images.detach().to(self._device_of(images), model_dtype(self.network()))

    def prepare(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        clean: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Validate inputs; return float images on the model's device, labels, clean predictions.

        ``clean``, when the caller already holds the model's predictions on ``images``, saves the
        clean forward pass (the labels' class range is then not checked against the model's).
        """
        images = self.prepare_images(images)
        if labels is not None:
            labels = check_labels(labels, images)
        if clean is not None:
            return images, labels, check_labels(clean, images, "clean")
        with torch.no_grad():
            clean_logits = checked_logits(self.logits(images))
        if labels is not None:
            check_labels_in_range(labels, clean_logits.shape[1])
        return images, labels, predicted_classes(clean_logits)

    def attack_targets(
        self, images: torch.Tensor, labels: torch.Tensor | None, clean: torch.Tensor
    ) -> torch.Tensor:
        """Per-pixel targets: the labels to move away from, or in targeted mode the target map."""
        if not self.targeted:
            return clean if labels is None else labels
        if self.attack_mode == "targeted(label)" and labels is None:
            raise ValueError("set_mode_targeted_by_label needs a (N, H, W) target map as labels")
        if self.attack_mode == "targeted(label)":
            targets = labels
        else:
            targets = self._target_map_function(images, labels if labels is not None else clean)
            targets = check_labels(targets, images, "target map")
        with torch.no_grad():
            num_classes = self.logits(images[:1]).shape[1]
        check_labels_in_range(targets, num_classes, "target map")
        return targets

    @torch.no_grad()
    def get_random_target_label(self, inputs, labels=None):
        """Per-pixel random target class, different from the label (or clean prediction)."""
        logits = self.logits(inputs)
        labels = predicted_classes(logits) if labels is None else labels
        num_classes = logits.shape[1]
        generator = (
            None if self.seed is None else torch.Generator(logits.device).manual_seed(self.seed)
        )
        shift = torch.randint(
            1, max(num_classes, 2), labels.shape, device=labels.device, generator=generator
        )
        targets = (labels.clamp(max=num_classes - 1) + shift) % num_classes
        return torch.where(labels == IGNORE_INDEX, labels, targets)

    @torch.no_grad()
    def get_least_likely_label(self, inputs, labels=None):
        """Per-pixel ``kth_min``-least-likely class, never the label (or clean prediction).

        Raises:
            ValueError: If ``kth_min`` is not in ``[1, K - 1]`` for the model's K classes.
        """
        logits = self.logits(inputs)
        num_classes = logits.shape[1]
        if not 1 <= self._kth_min <= num_classes - 1:
            raise ValueError(
                f"kth_min must be in [1, {num_classes - 1}] for a model with {num_classes} "
                f"classes (the label itself is never a target); got {self._kth_min}"
            )
        labels = predicted_classes(logits) if labels is None else labels
        keep = labels != IGNORE_INDEX
        masked = logits.scatter(1, labels.clamp(max=logits.shape[1] - 1)[:, None], float("inf"))
        targets = masked.topk(self._kth_min, dim=1, largest=False).indices[:, -1]
        return torch.where(keep, targets, labels)

    # ------------------------------------------------------------------ the PGD loop
    def initial_delta(
        self, images: torch.Tensor, radius: float, allowed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The starting perturbation: uniform in the ``radius`` ball with ``random_start``, else 0."""
        if not self.random_start:
            return torch.zeros_like(images)
        generator = (
            None if self.seed is None else torch.Generator(images.device).manual_seed(self.seed)
        )
        delta = torch.rand(images.shape, generator=generator, device=images.device)
        return project(images, (2 * delta - 1) * radius, radius, allowed)

    def pgd(
        self,
        images: torch.Tensor,
        objective: Callable[[torch.Tensor, int], torch.Tensor],
        allowed: torch.Tensor | None = None,
        scores: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Ascend ``objective(adv_images, step)``, a per-image loss (N,), from the random start.

        The attack's optimizer, radius, step and steps (see
        :func:`~regionattack.attacks.optimizers.ascend`); ``allowed`` (N or 1, H, W) confines
        where the perturbation may be non-zero.
        """
        return ascend(
            images,
            self.initial_delta(images, self.eps, allowed),
            objective,
            optimizer=self.optimizer,
            eps=self.eps,
            alpha=self.alpha,
            steps=self.steps,
            allowed=allowed,
            scores=scores,
        )

    def finish(self, adv: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Return ``adv`` on the device and in the dtype of the caller's images, still in the ball.

        When the caller's dtype is not the one the model computes in, the perturbation is
        projected again in that dtype: rounding to float16 or bfloat16 (or widening float32
        values to float64) could otherwise leave a pixel past ``eps``; such pixels are moved
        towards the clean image one representable value at a time.

        Raises:
            ValueError: If the adversarial images are not finite (the model's gradients were not).
        """
        if not bool(torch.isfinite(adv).all()):
            raise ValueError(
                "the attack produced NaN or infinite images: the model's logits or gradients are "
                "not finite on these images"
            )
        if adv.dtype == like.dtype:
            return adv.to(like.device)
        clean = like.to(adv.device, torch.float64)
        delta = (adv.double() - clean).clamp(-self.eps, self.eps)
        adv = (clean + delta).clamp(0, 1).to(like.dtype)
        like = like.to(adv.device)
        for _ in range(4):  # one step is enough unless a binade boundary lies in between
            outside = (adv.double() - clean).abs() > self.eps
            if not bool(outside.any()):
                break
            adv = torch.where(outside, torch.nextafter(adv, like), adv)
        return adv.to(like.device)

    # ------------------------------------------------------------------ segmentation-aware save
    def save(
        self,
        data_loader,
        save_path: str | os.PathLike | None = None,
        verbose: bool = True,
        return_verbose: bool = False,
        save_predictions: bool = False,
        save_clean_inputs: bool = False,
        save_type: str = "float",
        region: RegionLike | None = None,
    ):
        """Attack every ``(images, labels)`` batch; report per-pixel metrics; optionally save.

        Unlike torchattacks' per-image accuracy, this reports per-pixel accuracy and mIoU on all
        pixels, inside and outside the region (the attack's own region unless ``region`` is given;
        the whole image for attacks without one). The file (written once, atomically, at the end)
        has torchattacks' keys, so ``torchattacks.Attack.load`` reads it.

        Returns:
            ``(pixel_accuracy_percent, mean_l2, seconds)`` when ``return_verbose``, else None.
        """
        if save_type not in ("float", "int"):
            raise ValueError(f"save_type must be 'float' or 'int'; got {save_type!r}")
        own = getattr(self, "region", None)
        region = region if region is not None else own
        seen = 0
        saved: dict[str, list[torch.Tensor]] = {key: [] for key in _SAVE_KEYS}
        confusion: MaskedConfusions | None = None
        l2_norms: list[torch.Tensor] = []
        start = time.perf_counter()
        for step, item in enumerate(data_loader):
            inputs, labels = _labelled_batch(item)
            mask = _batch_region(region, labels, seen)[0]
            # the attack's own per-sample masks follow the loader's order: this batch's go to it
            own_mask, per_sample = _batch_region(own, labels, seen)
            adv = self(inputs, labels, region=own_mask) if per_sample else self(inputs, labels)
            with torch.no_grad(), frozen(self.model):
                logits = checked_logits(self.logits(adv))  # adv is already in the model's space
            preds = predicted_classes(logits).cpu()
            if confusion is None:
                confusion = MaskedConfusions(logits.shape[1], ["region"])
            seen += labels.shape[0]
            confusion.update(preds, labels.cpu().long(), {"region": mask})
            raw_adv, raw_inputs = self._unit_range(adv).cpu(), self._unit_range(inputs).cpu()
            l2_norms.append((raw_adv - raw_inputs).flatten(1).norm(dim=1))
            for key, value in zip(
                _SAVE_KEYS, (raw_adv, labels.cpu(), preds, raw_inputs), strict=True
            ):
                saved[key].append(value)
            if verbose:
                logger.info(
                    "save: batch %d, pixel accuracy %.2f%%",
                    step + 1,
                    100 * confusion.matrix("all").pixel_accuracy(),
                )
        if confusion is None:
            raise ValueError("data_loader yielded no batches")
        seconds = time.perf_counter() - start
        accuracy = 100 * confusion.matrix("all").pixel_accuracy()
        l2 = float(torch.cat(l2_norms).mean())
        if verbose:
            result = confusion.region("region")
            logger.info(
                "save: pixel accuracy %.2f%%, mIoU all %.4f inside %.4f outside %.4f, L2 %.4f, %.1fs",
                accuracy,
                result.all,
                result.inside,
                result.outside,
                l2,
                seconds,
            )
        if save_path is not None:
            _write_adversarials(saved, save_path, save_predictions, save_clean_inputs, save_type)
        return (accuracy, l2, seconds) if return_verbose else None

    def _unit_range(self, images: torch.Tensor) -> torch.Tensor:
        return self.inverse_normalize(images) if self._normalization_applied is True else images


def _labelled_batch(item: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of one item of ``save``'s loader; anything else is named."""
    if (
        isinstance(item, (tuple, list))
        and len(item) >= 2
        and all(isinstance(t, torch.Tensor) for t in item[:2])
    ):
        return item[0], item[1]
    found = type(item).__name__
    if isinstance(item, torch.Tensor):
        found += f" of shape {tuple(item.shape)}"
    elif isinstance(item, (tuple, list)):
        found += f" of {len(item)} item(s)"
    raise TypeError(
        "save needs a loader of (images, labels) batches (labels: (N, H, W) class ids, 255 = "
        f"ignore; for images only, call the attack itself); got {found}"
    )


def _batch_region(
    region: RegionLike | None, labels: torch.Tensor, seen: int
) -> tuple[torch.Tensor, bool]:
    """The region mask of the batch starting at image ``seen`` of the loader; per-sample or not.

    For a ``region`` of one mask per image of the loader, the mask is this batch's slice.
    """
    size, count = tuple(labels.shape[-2:]), labels.shape[0]
    if region is None:
        return torch.ones(1, *size, dtype=torch.bool), False
    mask = as_mask(region, size)
    if mask.shape[0] == 1:
        return mask, False
    if seen + count > mask.shape[0]:
        raise ValueError(
            f"region holds {mask.shape[0]} per-sample masks but the loader yields more images "
            f"(at least {seen + count}); give one mask per image of the loader, in its order"
        )
    return mask[seen : seen + count], True


def attack_with_clean(
    attack: Callable[..., torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor | None,
    clean: torch.Tensor,
    **kwargs: object,
) -> torch.Tensor:
    """``attack(images, labels, **kwargs)``, handing it ``clean=`` when its ``forward`` takes it.

    The caller's clean predictions save the attack its own clean forward pass; attacks that do
    not take them (torchattacks', plug-ins) are called as torchattacks calls them.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> from regionattack.attacks import UniformNoise
        >>> images = torch.rand(1, 3, 8, 8)
        >>> clean = torch.zeros(1, 8, 8, dtype=torch.long)
        >>> attack_with_clean(UniformNoise(TinySegmenter(), seed=0), images, None, clean).shape
        torch.Size([1, 3, 8, 8])
    """
    forward = getattr(attack, "forward", attack)
    if "clean" in inspect.signature(forward).parameters:
        kwargs["clean"] = clean
    return attack(images, labels, **kwargs)


_SAVE_KEYS = ("adv_inputs", "labels", "preds", "clean_inputs")


def _write_adversarials(
    saved: dict[str, list[torch.Tensor]],
    save_path: str | os.PathLike,
    save_predictions: bool,
    save_clean_inputs: bool,
    save_type: str,
) -> None:
    """Write torchattacks' save format atomically (a temporary file is renamed)."""
    keys = (
        ["adv_inputs", "labels"]
        + ["preds"] * save_predictions
        + ["clean_inputs"] * save_clean_inputs
    )
    record: dict[str, object] = {key: torch.cat(saved[key]) for key in keys}
    if save_type == "int":
        for key in ("adv_inputs", "clean_inputs"):
            if key in record:
                record[key] = (record[key] * 255).round().to(torch.uint8)  # type: ignore[operator]
    record["save_type"] = save_type
    torch_save_atomic(record, Path(save_path))
