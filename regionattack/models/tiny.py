"""Tiny segmenters for tests and examples: seconds on a CPU, same interface as smp models."""

from __future__ import annotations

import torch
from torch import nn

from regionattack._state import forked_rng


class TinySegmenter(nn.Module):
    """A three-layer encoder / decoder segmenter with ``encoder``, ``decoder``, ``segmentation_head``.

    The attribute names match segmentation_models_pytorch, so the latent defaults to the encoder's
    output, a (N, latent_channels, H/4, W/4) map. Zero padding lets it encode position.

    Args:
        num_classes: Output classes.
        latent_channels: Channels of the latent.
        in_channels: Input channels.

    Example:
        >>> net = TinySegmenter(num_classes=3, latent_channels=8)
        >>> net(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, num_classes: int = 3, latent_channels: int = 8, in_channels: int = 3):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, latent_channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, 8, 3, padding=1),
            nn.ReLU(),
            nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False),
        )
        self.segmentation_head = nn.Conv2d(8, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return (N, num_classes, H, W) logits."""
        return self.segmentation_head(self.decoder(self.encoder(images)))


class _PlantedEncoder(nn.Module):
    def __init__(self, latent_channels: int, generator: torch.Generator):
        super().__init__()
        self.content = nn.Conv2d(3, latent_channels - 1, 1)
        with torch.no_grad():
            self.content.weight.copy_(torch.rand(self.content.weight.shape, generator=generator))
            self.content.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        width = images.shape[-1]
        ramp = torch.linspace(0, 1, width, device=images.device, dtype=images.dtype)
        position = images.mean(dim=1, keepdim=True) * ramp  # content weighted by column position
        return torch.cat([position, torch.relu(self.content(images))], dim=1)


class PlantedPositionSegmenter(nn.Module):
    """A toy segmenter whose latent channel 0 is the only one that encodes position.

    Channel 0 is the image's brightness times a left-to-right ramp (what a zero-padded CNN learns to
    do implicitly); the other channels are 1x1 functions of the pixel colour, so their global
    average is unchanged by flipping the image. The head predicts class 1 where channel 0 is large
    (the right side) and class 0 elsewhere, leaning only slightly on the content channels. The
    weights come from ``seed`` alone; torch's global generator is left as it was.

    Example:
        >>> net = PlantedPositionSegmenter(latent_channels=6)
        >>> net(torch.full((1, 3, 4, 8), 0.5)).argmax(1)[0, 0].tolist()
        [0, 0, 0, 0, 1, 1, 1, 1]
    """

    def __init__(self, latent_channels: int = 8, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        with forked_rng():  # the layers' initial draws are all overwritten from ``generator``
            self.encoder = _PlantedEncoder(latent_channels, generator)
            self.decoder = nn.Identity()
            self.segmentation_head = nn.Conv2d(latent_channels, 2, 1)
        with torch.no_grad():
            weight = 0.01 * torch.randn(2, latent_channels, generator=generator)
            weight[:, 0] = torch.tensor([-8.0, 8.0])
            self.segmentation_head.weight.copy_(weight[:, :, None, None])
            self.segmentation_head.bias.copy_(torch.tensor([2.0, -2.0]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return (N, 2, H, W) logits."""
        return self.segmentation_head(self.decoder(self.encoder(images)))
