"""Build segmentation models by name from a fixed registry; nothing is downloaded.

Names come in three families:

* ``"smp:<Architecture>:<encoder>"``: segmentation_models_pytorch (e.g. ``"smp:DeepLabV3:resnet18"``);
* ``"torchvision:<builder>"``: torchvision's segmentation models (e.g.
  ``"torchvision:deeplabv3_resnet50"``);
* ``"paper:<builder>"``: the DeepLabV3 of the paper's official code, which follows
  VainF/DeepLabV3Plus-Pytorch: a dilated torchvision ResNet backbone returning ``layer4`` as
  ``"out"`` (output stride 16 by default, or 8) and a DeepLabV3 head without auxiliary classifier
  (ASPP rates (6, 12, 18) at stride 16, (12, 24, 36) at stride 8). It is a torchvision
  ``DeepLabV3``, so its latent is ``backbone["out"]`` like torchvision's models, and it returns
  ``{"out": logits}``.
* ``"hf:<model>"``: Hugging Face ``transformers`` models built from a config (the optional extra
  ``regionattack[hf]``): ``"hf:segformer"`` (``SegformerForSemanticSegmentation``, MiT-b0 sizes by
  default) and ``"hf:upernet-convnext"`` (``UperNetForSemanticSegmentation`` on a ConvNeXt-tiny
  backbone, no auxiliary head). Options set config fields; for UperNet, options named
  ``backbone_<field>`` set the ConvNeXt backbone's. They return a ``SemanticSegmenterOutput``
  whose logits are at 1/4 of the input size (see :func:`regionattack.latent.model_logits`).

Weights are random; load a checkpoint with :func:`regionattack.models.load_weights` (which also
reads the paper's/VainF's checkpoints) or :func:`regionattack.models.build_from_checkpoint`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from regionattack._checks import check_positive_int, import_optional

SMP_ARCHITECTURES = (
    "DeepLabV3",
    "DeepLabV3Plus",
    "FPN",
    "Linknet",
    "PAN",
    "PSPNet",
    "Unet",
    "UnetPlusPlus",
)
TORCHVISION_MODELS = (
    "deeplabv3_mobilenet_v3_large",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "fcn_resnet50",
    "fcn_resnet101",
    "lraspp_mobilenet_v3_large",
)
PAPER_MODELS = ("deeplabv3_resnet50", "deeplabv3_resnet101")
PAPER_OPTIONS = ("output_stride",)
# output stride -> (ResNet replace_stride_with_dilation, ASPP atrous rates), as in VainF's modeling.py
HF_MODELS = ("segformer", "upernet-convnext")
_HF_MINVERSION = "5.9"  # SegFormer's last feature map is a module output from 5.9 on
_PAPER_STRIDES = {
    8: ((False, True, True), (12, 24, 36)),
    16: ((False, False, True), (6, 12, 18)),
}


def build_model(name: str, num_classes: int, **options: object) -> nn.Module:
    """Return a randomly initialised segmentation model.

    Args:
        name: ``"smp:<Architecture>:<encoder>"``, ``"torchvision:<builder>"``,
            ``"paper:<builder>"`` with builder ``deeplabv3_resnet50`` or ``deeplabv3_resnet101``,
            or ``"hf:segformer"`` / ``"hf:upernet-convnext"`` (needs ``regionattack[hf]``).
        num_classes: Number of output classes.
        **options: Passed to the constructor (e.g. ``encoder_output_stride=16`` for smp DeepLabV3).
            Paper models take only ``output_stride`` (16, the default, or 8).

    Raises:
        ValueError: If the family, architecture or builder is unknown (the message lists the
            choices), the encoder is not one segmentation_models_pytorch knows, or a paper model
            gets an unknown option or an output stride other than 8 or 16.
        ImportError: For an ``hf:`` model without ``transformers`` >= 5.9.

    Example:
        >>> net = build_model("smp:FPN:resnet18", num_classes=4)
        >>> type(net).__name__, net.segmentation_head[0].out_channels
        ('FPN', 4)
        >>> import torch
        >>> net = build_model("paper:deeplabv3_resnet50", num_classes=3).eval()
        >>> net(torch.rand(1, 3, 32, 32))["out"].shape
        torch.Size([1, 3, 32, 32])
    """
    check_positive_int(num_classes, "num_classes")
    family, _, rest = name.partition(":")
    if family == "smp":
        smp = import_optional("segmentation_models_pytorch", "models")

        arch, _, encoder = rest.partition(":")
        if arch not in SMP_ARCHITECTURES or not encoder:
            raise ValueError(
                f"smp models are 'smp:<Architecture>:<encoder>' with Architecture one of "
                f"{list(SMP_ARCHITECTURES)}; got {name!r}"
            )
        if encoder not in smp.encoders.get_encoder_names():
            raise ValueError(
                f"unknown smp encoder {encoder!r}; see smp.encoders.get_encoder_names()"
            )
        architecture = getattr(smp, arch)
        _check_named_options(
            architecture.__init__, options, name, {"encoder_name", "encoder_weights", "classes"}
        )
        return architecture(encoder, encoder_weights=None, classes=num_classes, **options)
    if family == "torchvision":
        from torchvision.models import segmentation

        if rest not in TORCHVISION_MODELS:
            raise ValueError(
                f"torchvision models are one of {list(TORCHVISION_MODELS)}; got {rest!r}"
            )
        builder = getattr(segmentation, rest)
        fixed = {"weights", "weights_backbone", "num_classes"}
        _check_named_options(builder, options, name, fixed)
        return builder(weights=None, weights_backbone=None, num_classes=num_classes, **options)
    if family == "paper":
        if rest not in PAPER_MODELS:
            raise ValueError(f"paper models are one of {list(PAPER_MODELS)}; got {rest!r}")
        return _paper_deeplabv3(rest.removeprefix("deeplabv3_"), num_classes, **options)
    if family == "hf":
        if rest not in HF_MODELS:
            raise ValueError(f"hf models are one of {list(HF_MODELS)}; got {rest!r}")
        return _hf_model(rest, num_classes, **options)
    raise ValueError(
        f"model names start with 'smp:', 'torchvision:', 'paper:' or 'hf:'; got {name!r}"
    )


def _check_named_options(constructor: Callable, options: dict, name: str, fixed: set[str]) -> None:
    """Refuse options that are not named parameters of ``constructor``.

    smp's architectures and torchvision's builders take ``**kwargs`` and drop what they do not
    know, so a misspelt option (``decoder_dropuot``) would otherwise build the default model.
    """
    parameters = inspect.signature(constructor).parameters
    known = {
        key
        for key, parameter in parameters.items()
        if key != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    } - fixed
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{name} has no option(s) {unknown}; known: {sorted(known)}")


def _hf_model(name: str, num_classes: int, **options: object) -> nn.Module:
    """Build a Hugging Face segmentation model from a config (random weights)."""
    transformers = import_optional("transformers", "hf", _HF_MINVERSION)
    if name == "segformer":
        config = _hf_config(transformers.SegformerConfig, options, num_labels=num_classes)
        return transformers.SegformerForSemanticSegmentation(config)
    prefix = "backbone_"
    inner = {key.removeprefix(prefix): v for key, v in options.items() if key.startswith(prefix)}
    outer = {key: v for key, v in options.items() if not key.startswith(prefix)}
    default = _hf_config(transformers.ConvNextConfig, inner, name_prefix=prefix)
    inner["hidden_sizes"] = list(default.hidden_sizes)  # ConvNextBackbone needs a list (5.24)
    backbone = transformers.ConvNextConfig(out_features=list(default.stage_names[1:]), **inner)
    config = _hf_config(
        transformers.UperNetConfig, {"use_auxiliary_head": False, **outer},
        backbone_config=backbone, num_labels=num_classes,
    )  # fmt: skip
    return transformers.UperNetForSemanticSegmentation(config)


def _hf_config(config_class: type, options: dict, name_prefix: str = "", **fixed: object) -> object:
    """``config_class(**fixed, **options)``, refusing options the config does not have.

    Hugging Face configs keep unknown keyword arguments as attributes, so a misspelt option
    would otherwise be ignored without a word.
    """
    known = {key for key in config_class().to_dict() if not key.startswith("_")}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"{config_class.__name__} has no field(s) {[name_prefix + key for key in unknown]}; "
            f"known: {sorted(name_prefix + key for key in known - set(fixed))}"
        )
    return config_class(**fixed, **options)


def _paper_deeplabv3(backbone_name: str, num_classes: int, **options: object) -> nn.Module:
    """Build VainF's DeepLabV3 (ResNet backbone, no auxiliary head) from torchvision parts."""
    from torchvision import models
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3

    unknown = sorted(set(options) - set(PAPER_OPTIONS))
    if unknown:
        raise ValueError(f"paper models take options {list(PAPER_OPTIONS)}; got {unknown}")
    output_stride = options.get("output_stride", 16)
    if isinstance(output_stride, bool) or output_stride not in tuple(_PAPER_STRIDES):
        raise ValueError(
            f"output_stride must be one of {list(_PAPER_STRIDES)}; got {output_stride!r}"
        )
    dilation, rates = _PAPER_STRIDES[output_stride]
    resnet = getattr(models, backbone_name)(
        weights=None, replace_stride_with_dilation=list(dilation)
    )
    backbone = IntermediateLayerGetter(resnet, return_layers={"layer4": "out"})
    classifier = DeepLabHead(2048, num_classes, atrous_rates=rates)
    return DeepLabV3(backbone, classifier, None)
