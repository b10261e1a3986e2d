"""Find a model's latent layer, capture its output and replace it (hook helpers).

The *latent* is the feature map whose channels are ranked and ablated. By default it is the deepest
feature map that feeds the decoder:

* segmentation_models_pytorch models: the last feature of ``encoder`` (e.g. 512 channels for a
  ResNet-18 encoder);
* torchvision segmentation models (``deeplabv3_*``, ``fcn_*``, ``lraspp_*``): ``backbone["out"]``
  (``backbone["high"]`` for LR-ASPP);
* Hugging Face ``transformers`` SegFormer (``SegformerForSemanticSegmentation``, transformers
  >= 5.9): the last encoder stage, ``segformer.stages.<last>`` (N, C, H/32, W/32);
* Hugging Face UperNet on a ConvNeXt backbone (``UperNetForSemanticSegmentation``): the
  normalised last feature map of the backbone, ``backbone.hidden_states_norms.<last stage>``
  (N, C, H/32, W/32); a Swin backbone's is reshaped inside its forward, so it is not detected;
* a model holding exactly one of these somewhere inside (e.g. a user's wrapper that normalises
  its input and calls ``self.net``): that model's latent, named from the root (``"net.encoder"``);
* any other model: pass ``layer="dotted.module.name"``. The layer's output may be a tensor, a
  list/tuple (the last element is the latent) or a dict (its ``"out"`` entry, else ``"high"``).

Layer names are relative to the model inside :class:`~regionattack.NormalizedModel` wrappers.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from regionattack._checks import model_dtype
from regionattack._state import private_buffers
from regionattack.normalization import unwrap

__all__ = [
    "default_layer",
    "edit_latent",
    "find_layer",
    "latent_of",
    "layer_output",
    "model_logits",
    "predict",
    "predicted_classes",
    "resize_logits",
    "select_latent",
]


_LATENT_KEYS = ("out", "high")  # torchvision backbones: IntermediateLayerGetter / LR-ASPP


def _own_layer(module: nn.Module) -> str | None:
    """The latent layer's name if ``module`` itself is a known architecture, else None.

    Raises:
        ValueError: For a Hugging Face SegFormer of a ``transformers`` release before 5.9, whose
            encoder reshapes its last feature map inside its own forward (no module returns it).
    """
    if all(hasattr(module, name) for name in ("encoder", "decoder", "segmentation_head")):
        return "encoder"  # segmentation_models_pytorch and regionattack's own models
    if isinstance(getattr(module, "backbone", None), nn.Module) and hasattr(module, "classifier"):
        return "backbone"  # torchvision's segmentation models
    segformer = getattr(module, "segformer", None)
    if isinstance(segformer, nn.Module) and hasattr(module, "decode_head"):
        stages = getattr(segformer, "stages", None)
        if not isinstance(stages, nn.ModuleList):
            raise ValueError(
                "this SegFormer's last feature map is not the output of a module; install "
                "transformers >= 5.9 (pip install 'regionattack[hf]') or pass layer="
            )
        return f"segformer.stages.{len(stages) - 1}"  # Hugging Face SegFormer: the last stage
    backbone = getattr(module, "backbone", None)
    norms = getattr(backbone, "hidden_states_norms", None)
    if isinstance(norms, nn.ModuleDict) and hasattr(module, "decode_head"):
        last = backbone.out_features[-1]  # Hugging Face UperNet: the backbone's last feature map
        if type(backbone).__name__ != "ConvNextBackbone":
            raise ValueError(
                f"the latent of an UperNet on a {type(backbone).__name__} is not a module output "
                "of shape (N, C, h, w) (it is reshaped inside the backbone's forward); only "
                "ConvNeXt backbones are detected. Attacks run without a latent; maps need "
                "channels=False"
            )
        return f"backbone.hidden_states_norms.{last}"
    return None


def default_layer(model: nn.Module) -> str:
    """Return the name of the default latent layer of a known architecture.

    When the model is not a known architecture itself but holds exactly one somewhere inside (a
    wrapper of the user's), that model's latent layer is returned, named from the root.

    Raises:
        ValueError: If the architecture is not recognised and no known segmentation model is
            inside (the message lists candidate names), or several are (the message lists them);
            pass ``layer=`` then.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> default_layer(TinySegmenter(num_classes=2))
        'encoder'
        >>> from regionattack.models import TinySegmenter
        >>> default_layer(nn.ModuleDict({"net": TinySegmenter()}))
        'net.encoder'
    """
    inner = unwrap(model)
    own = _own_layer(inner)
    if own is not None:
        return own
    found: list[tuple[str, str]] = []  # (dotted name of the model, its latent layer)
    for name, module in inner.named_modules():
        if not name or any(name.startswith(f"{outer}.") for outer, _ in found):
            continue  # the root was checked; a model inside a found one is part of it
        layer = _own_layer(module)
        if layer is not None:
            found.append((name, layer))
    if len(found) == 1:
        return f"{found[0][0]}.{found[0][1]}"
    if found:
        raise ValueError(
            f"cannot tell the latent layer of {type(inner).__name__}: it holds {len(found)} "
            f"segmentation models, {[name for name, _ in found]}; pass layer= one of "
            f"{[f'{name}.{layer}' for name, layer in found]} (or another module name)"
        )
    raise ValueError(
        f"cannot tell the latent layer of {type(inner).__name__}; pass layer= one of "
        f"{_candidates(inner)}"
    )


def _candidates(model: nn.Module, limit: int = 40) -> list[str]:
    names = [name for name, _ in model.named_modules() if name and name.count(".") < 2]
    return names[:limit] + (["..."] if len(names) > limit else [])


def find_layer(model: nn.Module, layer: str | None = None) -> tuple[str, nn.Module]:
    """Return ``(name, module)`` of the latent layer, the default one when ``layer`` is None.

    The default is the latent of a known architecture, also one held inside a wrapper (see
    :func:`default_layer`). Names are dotted module names relative to the model inside any
    :class:`~regionattack.NormalizedModel`, so ``find_layer(model, name)`` finds the module again.

    Raises:
        TypeError: If ``layer`` is not a string.
        ValueError: If ``layer`` names no module, or it is None and the latent layer cannot be
            told (see :func:`default_layer`); the message lists candidate names.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> find_layer(net, "0")
        ('0', Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1)))
    """
    inner = unwrap(model)
    name = default_layer(inner) if layer is None else layer
    if not isinstance(name, str):
        raise TypeError(f"layer must be a dotted module name (str); got {type(name).__name__}")
    modules = dict(inner.named_modules())
    if name not in modules or not name:
        raise ValueError(f"model has no layer {name!r}; candidates: {_candidates(inner)}")
    return name, modules[name]


def _dict_key(output: dict) -> str | None:
    return next((key for key in _LATENT_KEYS if key in output), None)


def select_latent(output: object) -> torch.Tensor:
    """Return the latent tensor inside a layer's output (tensor, list/tuple or dict).

    Example:
        >>> select_latent({"out": torch.ones(1, 4, 2, 2), "aux": torch.zeros(1)}).shape
        torch.Size([1, 4, 2, 2])
    """
    if isinstance(output, torch.Tensor):
        latent = output
    elif isinstance(output, (list, tuple)) and output:
        latent = output[-1]
    elif isinstance(output, dict) and _dict_key(output) is not None:
        latent = output[_dict_key(output)]
    else:
        raise TypeError(
            "the latent layer must return a tensor, a non-empty list/tuple or a dict with 'out' "
            "(or 'high', as LR-ASPP's backbone); "
            f"got {type(output).__name__}"
        )
    if not isinstance(latent, torch.Tensor) or latent.ndim != 4:
        raise ValueError(
            "the latent must be a (N, K, h, w) tensor; got "
            f"{tuple(latent.shape) if isinstance(latent, torch.Tensor) else type(latent).__name__}"
        )
    return latent


def _with_latent(output: object, latent: torch.Tensor) -> object:
    if isinstance(output, torch.Tensor):
        return latent
    if isinstance(output, list):
        return [*output[:-1], latent]
    if isinstance(output, tuple):
        return (*output[:-1], latent)
    replaced = copy.copy(output)  # keeps the dict type (e.g. torchvision's OrderedDict)
    replaced[_dict_key(output)] = latent  # type: ignore[index]
    return replaced


def model_logits(output: object, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Return the (N, K, H, W) logits inside a model's output, at ``size`` when given.

    Accepts a tensor, a torchvision dict (``"out"``), a tuple/list whose first element holds the
    masks (segmentation_models_pytorch with an auxiliary head), or an output with ``logits``
    (Hugging Face ``transformers``, e.g. ``SemanticSegmenterOutput``). Logits smaller than
    ``size`` (SegFormer's are at 1/4 of the input) are upsampled bilinearly to it, as
    ``transformers``' post-processing does, so every attack, ranking and metric sees one
    prediction per input pixel.

    Raises:
        ValueError: If there are no 4-D logits, or they are larger than ``size`` in a dimension.

    Example:
        >>> model_logits((torch.zeros(1, 2, 3, 3), torch.zeros(1, 2))).shape
        torch.Size([1, 2, 3, 3])
        >>> model_logits(torch.zeros(1, 2, 4, 4), size=(16, 16)).shape
        torch.Size([1, 2, 16, 16])
    """
    if isinstance(output, dict) and "out" in output:
        output = output["out"]
    elif isinstance(output, dict) and "logits" in output:
        output = output["logits"]
    elif not isinstance(output, (torch.Tensor, dict)) and hasattr(output, "logits"):
        output = output.logits
    elif isinstance(output, (list, tuple)) and output:
        items, output = output, output[0]
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            later = [
                i
                for i, item in enumerate(items)
                if isinstance(item, torch.Tensor) and item.ndim == 4
            ]
            hint = f"; item {later[0]} looks like the logits: return it first" if later else ""
            raise ValueError(
                "a segmentation model that returns a tuple must put its (N, K, H, W) logits "
                f"first; got {_described(output)} first{hint}"
            )
    if not isinstance(output, torch.Tensor) or output.ndim != 4:
        raise ValueError(
            "a segmentation model must return (N, K, H, W) logits (a tensor, a dict with 'out', "
            f"a tuple with masks first or an output with .logits); got {_described(output)}"
        )
    if size is None or tuple(output.shape[-2:]) == tuple(size):
        return output
    if output.shape[-2] > size[0] or output.shape[-1] > size[1]:
        raise ValueError(
            f"the model's logits ({tuple(output.shape[-2:])}) are larger than its input "
            f"({tuple(size)}); expected logits at the input size or smaller"
        )
    return resize_logits(output, size)


def _described(value: object) -> str:
    """A value's type, and its shape for a tensor (for error messages)."""
    shape = f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else ""
    return f"{type(value).__name__}{shape}"


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``logits`` (N, K, h, w) at ``size``, resized bilinearly (as ``transformers``' post-processing).

    Example:
        >>> resize_logits(torch.zeros(1, 2, 4, 4), (8, 8)).shape
        torch.Size([1, 2, 8, 8])
    """
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def checked_logits(logits: torch.Tensor) -> torch.Tensor:
    """``logits``, refused when any value is NaN or infinite (a broken model, weights or input).

    Every prediction the library reads as a result goes through it: a NaN logit would otherwise
    become class 0 (or the first maximum) and a clean-looking number.

    Example:
        >>> checked_logits(torch.tensor([[float("nan")]]))
        Traceback (most recent call last):
        ...
        ValueError: the model's logits contain NaN or infinite values; check its weights, its dtype and its inputs
    """
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(
            "the model's logits contain NaN or infinite values; check its weights, its dtype and "
            "its inputs"
        )
    return logits


def checked_latent(latent: torch.Tensor, layer: str) -> torch.Tensor:
    """``latent`` (the output of layer ``layer``), refused when any value is NaN or infinite.

    Example:
        >>> checked_latent(torch.tensor([[float("inf")]]), "encoder")
        Traceback (most recent call last):
        ...
        ValueError: the latent layer 'encoder' holds NaN or infinite values; check the model's weights, its dtype and its inputs
    """
    if not bool(torch.isfinite(latent).all()):
        raise ValueError(
            f"the latent layer {layer!r} holds NaN or infinite values; check the model's weights, "
            "its dtype and its inputs"
        )
    return latent


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel predicted class (N, H, W): ``logits.argmax(dim=1)``, several times faster on CPUs.

    ``Tensor.max(dim=1).indices`` gives the same indices (the first maximum on ties, a NaN counting
    as the maximum) but, on the CPU, reduces over the class dimension of (N, K, H, W) logits
    several times faster than ``argmax(dim=1)`` (torch 2.14; docs/performance.md); the attacks
    call it at every step.

    Example:
        >>> predicted_classes(torch.tensor([[[[1.0, 3.0]], [[2.0, 3.0]]]])).tolist()
        [[[1, 0]]]
    """
    return logits.max(dim=1).indices


def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The model's per-pixel classes (N, H, W) on ``images``: logits at the input's size, no grad.

    Example:
        >>> net = nn.Conv2d(3, 2, 1)
        >>> predict(net, torch.zeros(1, 3, 2, 2)).shape
        torch.Size([1, 2, 2])
    """
    with torch.no_grad():
        return predicted_classes(checked_logits(model_logits(model(images), images.shape[-2:])))


@contextlib.contextmanager
def layer_hook(
    model: nn.Module,
    hook: Callable[[object], object | None],
    layer: str | None = None,
    *,
    once: bool = False,
) -> Iterator[str]:
    """Within the block, pass the latent layer's whole output of every forward pass to ``hook``.

    ``hook`` returns a replacement output or None. With ``once``, a forward pass of ``model``
    that runs the layer twice (a wrapper calling the network twice, an auxiliary head that
    re-runs the encoder) raises instead of mixing two latents. The hooks are removed on exit,
    also when the block raises.

    Yields:
        The resolved layer name.

    Raises:
        ValueError: With ``once``, when the layer runs more than once in one forward pass.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten())
        >>> seen = []
        >>> with layer_hook(net, lambda out: seen.append(out.shape), layer="0", once=True):
        ...     _ = net(torch.ones(1, 1, 1, 1))
        >>> seen
        [torch.Size([1, 2, 1, 1])]
    """
    name, module = find_layer(model, layer)
    runs = [0]

    def reset(_module: nn.Module, _inputs: object) -> None:
        runs[0] = 0

    def on_output(_module: nn.Module, _inputs: object, output: object) -> object:
        runs[0] += 1
        if once and runs[0] > 1:
            raise ValueError(
                f"the latent layer {name!r} ran {runs[0]} times in one forward pass of the model "
                "(a wrapper that calls the network twice, or a head that re-runs the encoder); "
                "pass a model or layer= whose latent layer runs once per forward pass"
            )
        return hook(output)

    handles = [module.register_forward_hook(on_output)]
    if once:
        handles.append(model.register_forward_pre_hook(reset))
    try:
        yield name
    finally:
        for handle in handles:
            handle.remove()


def edit_latent(
    model: nn.Module,
    edit: Callable[[torch.Tensor], torch.Tensor | None],
    layer: str | None = None,
    *,
    once: bool = False,
) -> contextlib.AbstractContextManager[str]:
    """Within the block, pass the latent of every forward pass through ``edit``.

    ``edit`` receives the latent and returns a replacement, or None to keep it (e.g. to only record
    it). ``once``: refuse a forward pass that runs the layer twice (see :func:`layer_hook`). The
    hook is removed on exit, also when the block raises.

    Yields:
        The resolved layer name.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten())
        >>> with edit_latent(net, lambda z: torch.zeros_like(z), layer="0"):
        ...     net(torch.ones(1, 1, 1, 1)).tolist()
        [[0.0, 0.0]]
    """

    def hook(output: object) -> object:
        replacement = edit(select_latent(output))
        return None if replacement is None else _with_latent(output, replacement)

    return layer_hook(model, hook, layer, once=once)


class _LayerReached(Exception):
    def __init__(self, output: object):
        super().__init__()
        self.output = output


def layer_output(
    model: nn.Module,
    images: torch.Tensor,
    layer: str | None = None,
    *,
    update_buffers: bool = False,
) -> object:
    """Return the latent layer's whole output (tensor, list or dict), running only up to it.

    The forward pass stops as soon as the layer has produced its output, so decoders and heads are
    never run. It runs in the model's current mode (no training flag is changed): in training mode
    batch norm normalises with the batch's own statistics and dropout is active, but the model's
    buffers (running statistics, ``num_batches_tracked``) are left as they were, also when the call
    raises (:func:`regionattack._state.private_buffers`). Call ``model.eval()`` first for
    eval-mode outputs. Gradients flow to ``images`` and the parameters unless called under
    ``torch.no_grad``. ``update_buffers=True`` makes it a training forward: in training mode the
    running statistics are updated as ``model(images)`` would (AugShift's views while training).

    Raises:
        ValueError: If ``layer`` names no module or the latent layer cannot be told.
        RuntimeError: If the forward pass does not run the layer.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2).eval()
        >>> layer_output(net, torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 8, 16, 16])
    """
    _, module = find_layer(model, layer)
    dtype = model_dtype(model)  # a half-precision or meta model is refused, naming it
    if images.is_floating_point() and images.dtype != dtype:
        images = images.to(dtype)  # differentiable: gradients still flow back to ``images``

    def stop(_module: nn.Module, _inputs: object, output: object) -> None:
        raise _LayerReached(output)

    handle = module.register_forward_hook(stop)
    try:
        if update_buffers:
            model(images)
        else:
            with private_buffers(model):
                model(images)
    except _LayerReached as reached:
        return reached.output
    finally:
        handle.remove()
    raise RuntimeError("the latent layer was not run during the forward pass")


def latent_of(
    model: nn.Module,
    images: torch.Tensor,
    layer: str | None = None,
    *,
    update_buffers: bool = False,
) -> torch.Tensor:
    """Return the latent of ``images``, running the model only up to the latent layer.

    The model is left exactly as found: the forward runs in its current mode (in training mode
    with batch statistics and active dropout; call ``model.eval()`` or use the model inside
    :func:`regionattack._state.frozen` for eval-mode latents), and no training flag, buffer or
    hook is changed, also when the call raises (see :func:`layer_output`, also for
    ``update_buffers``, a training forward).

    Raises:
        ValueError: If ``layer`` names no module, the latent layer cannot be told, or its output
            holds no (N, K, h, w) tensor.
        TypeError: If the layer's output is not a tensor, list/tuple or dict.
        RuntimeError: If the forward pass does not run the layer.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2).eval()
        >>> latent_of(net, torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 8, 16, 16])
    """
    return select_latent(layer_output(model, images, layer, update_buffers=update_buffers))
