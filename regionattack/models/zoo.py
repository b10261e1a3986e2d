"""Build segmentation models by name from a fixed registry; nothing is downloaded.

Names are ``"smp:<Architecture>:<encoder>"`` (segmentation_models_pytorch, e.g.
``"smp:DeepLabV3:resnet18"``) or ``"torchvision:<builder>"`` (e.g. ``"torchvision:deeplabv3_resnet50"``).
Weights are random; load a checkpoint yourself or with the benchmarks' loaders.
"""

from __future__ import annotations

from torch import nn

from regionattack._checks import check_positive_int

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


def build_model(name: str, num_classes: int, **options: object) -> nn.Module:
    """Return a randomly initialised segmentation model.

    Args:
        name: ``"smp:<Architecture>:<encoder>"`` or ``"torchvision:<builder>"``.
        num_classes: Number of output classes.
        **options: Passed to the constructor (e.g. ``encoder_output_stride=16`` for smp DeepLabV3).

    Raises:
        ValueError: If the family, architecture or builder is unknown (the message lists the
            choices) or the encoder is not one segmentation_models_pytorch knows.

    Example:
        >>> net = build_model("smp:FPN:resnet18", num_classes=4)
        >>> type(net).__name__, net.segmentation_head[0].out_channels
        ('FPN', 4)
    """
    check_positive_int(num_classes, "num_classes")
    family, _, rest = name.partition(":")
    if family == "smp":
        import segmentation_models_pytorch as smp

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
        return getattr(smp, arch)(encoder, encoder_weights=None, classes=num_classes, **options)
    if family == "torchvision":
        from torchvision.models import segmentation

        if rest not in TORCHVISION_MODELS:
            raise ValueError(
                f"torchvision models are one of {list(TORCHVISION_MODELS)}; got {rest!r}"
            )
        return getattr(segmentation, rest)(
            weights=None, weights_backbone=None, num_classes=num_classes, **options
        )
    raise ValueError(f"model names start with 'smp:' or 'torchvision:'; got {name!r}")
