"""The paper's Section 3 position probe: can a linear read-out tell *where* content is?

Each image is shrunk and pasted into one cell of a ``grid`` x ``grid`` canvas, the canvas goes
through the model up to its latent, the latent is global-average-pooled to one value per channel,
and a linear read-out is trained to predict the cell from those K numbers. Global pooling throws
away where in the map a channel fires, so any accuracy above chance means absolute position is
encoded *in which channels are active* (Islam et al., ICCV 2021, Section 3).

``permute=True`` is the PermuteNet control: the pooled channels are shuffled at random before the
read-out sees them, so channel identity carries nothing and position should fall to chance, while
an image-level class (``labels``) can survive through channel statistics that ignore order.

The empty part of every canvas is zero *in the model's normalised input space*, as in the official
code: for a :class:`~regionattack.NormalizedModel` the
background is the normalisation mean (what normalisation maps to 0), for any other model it is 0.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from regionattack._checks import check_positive_int, check_tensor, import_optional, model_inputs
from regionattack._state import frozen
from regionattack.latent import checked_latent, find_layer, latent_of
from regionattack.metrics import ConfusionMatrix
from regionattack.normalization import NormalizedModel

__all__ = [
    "ProbeResult",
    "position_readout",
]


logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ProbeResult:
    """What :func:`position_readout` measured on the held-out images.

    Attributes:
        accuracy: Held-out accuracy of the cell read-out.
        chance: ``1 / grid**2``.
        class_accuracy: Held-out accuracy of the class read-out, None without ``labels``.
        class_chance: ``1 / number of classes in labels``, None without ``labels``.
        grid: Cells per side.
        permute: Whether the channels were permuted before the read-outs (PermuteNet control).
        num_images: Images probed (train and held-out together).
        num_channels: Channels K of the pooled latent.
        confusion: (grid**2, grid**2) long tensor on the held-out canvases; rows are the true
            cell, columns the predicted one; cells are numbered row-major.
        per_cell_accuracy: (grid**2,) float tensor, the diagonal of ``confusion`` over its rows.
    """

    accuracy: float
    chance: float
    class_accuracy: float | None
    class_chance: float | None
    grid: int
    permute: bool
    num_images: int
    num_channels: int
    confusion: torch.Tensor
    per_cell_accuracy: torch.Tensor

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain Python values (JSON-ready)."""
        return {
            "accuracy": self.accuracy,
            "chance": self.chance,
            "class_accuracy": self.class_accuracy,
            "class_chance": self.class_chance,
            "grid": self.grid,
            "permute": self.permute,
            "num_images": self.num_images,
            "num_channels": self.num_channels,
            "confusion": self.confusion.tolist(),
            "per_cell_accuracy": self.per_cell_accuracy.tolist(),
        }

    def plot(self, path: str | Path | None = None, ax: Any = None) -> Any:
        """Draw the per-cell accuracy as a grid x grid heat map with the values in the cells.

        Args:
            path: If given, the figure is saved there (e.g. a ``.png``).
            ax: A matplotlib axes to draw into; by default a new figure is made (without pyplot,
                so nothing is left open in pyplot's figure registry).

        Returns:
            The matplotlib figure.
        """
        import_optional("matplotlib", "figures")
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(1.2 * self.grid + 1.5, 1.2 * self.grid + 0.8))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        cells = self.per_cell_accuracy.reshape(self.grid, self.grid).cpu().numpy()
        image = ax.imshow(cells, vmin=0.0, vmax=1.0, cmap="viridis")
        for row in range(self.grid):
            for col in range(self.grid):
                value = float(cells[row, col])
                ax.text(
                    col,
                    row,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    color="black" if value > 0.6 else "white",
                )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(
            f"position read-out accuracy {self.accuracy:.2f} (chance {self.chance:.2f})",
            fontsize=9,
        )
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        if path is not None:
            fig.savefig(path, dpi=110, bbox_inches="tight")
        return fig


def _background(model: nn.Module, channels: int) -> torch.Tensor:
    """Return the (C,) colour that the model's normalisation maps to 0 (0 without normalisation).

    Nested :class:`NormalizedModel` wrappers are undone from the innermost one outwards.
    """
    wrappers = []
    while isinstance(model, NormalizedModel):
        wrappers.append(model)
        model = model.model
    value = torch.zeros(channels)
    for wrapper in reversed(wrappers):
        mean = wrapper.mean.detach().flatten().float().cpu()
        std = wrapper.std.detach().flatten().float().cpu()
        if mean.numel() != channels:
            raise ValueError(
                f"images have {channels} channels but the model's mean/std have {mean.numel()}"
            )
        value = value * std + mean
    return value


def _cell_bounds(size: int, grid: int) -> list[tuple[int, int]]:
    """Return (start, stop) of each of ``grid`` near-equal cells along a side of ``size`` pixels."""
    return [(i * size // grid, (i + 1) * size // grid) for i in range(grid)]


def _canvases(
    images: torch.Tensor,
    grid: int,
    background: torch.Tensor,
    scale: float | None = None,
) -> torch.Tensor:
    """Paste each image, shrunk, into each cell of an otherwise ``background`` canvas.

    Args:
        images: (N, C, H, W) images.
        grid: Cells per side; cell ``row * grid + col`` is the row-major index.
        background: (C,) colour of the empty canvas.
        scale: Side of the pasted image as a fraction of the canvas side; None fills the cell
            (``H // grid`` x ``W // grid``). The image is centred in its cell.

    Returns:
        (N * grid**2, C, H, W) canvases, image-major: canvas ``n * grid**2 + cell``.
    """
    n, c, height, width = images.shape
    patch_h, patch_w = height // grid, width // grid
    if scale is not None:
        patch_h = min(patch_h, max(1, round(scale * height)))
        patch_w = min(patch_w, max(1, round(scale * width)))
    patches = F.interpolate(
        images, size=(patch_h, patch_w), mode="bilinear", align_corners=False, antialias=True
    ).clamp(0, 1)
    fill = background.to(device=images.device, dtype=images.dtype).view(1, 1, c, 1, 1)
    canvases = fill.expand(n, grid * grid, c, height, width).clone()
    for row, (top, bottom) in enumerate(_cell_bounds(height, grid)):
        y = top + (bottom - top - patch_h) // 2
        for col, (left, right) in enumerate(_cell_bounds(width, grid)):
            x = left + (right - left - patch_w) // 2
            canvases[:, row * grid + col, :, y : y + patch_h, x : x + patch_w] = patches
    return canvases.reshape(n * grid * grid, c, height, width)


def _pooled(
    model: nn.Module, canvases: torch.Tensor, layer: str | None, batch_size: int
) -> torch.Tensor:
    """Return the (M, K) global-average-pooled latent of ``canvases``, batch by batch."""
    pooled = []
    name = find_layer(model, layer)[0]
    with torch.no_grad(), frozen(model):
        for start in range(0, canvases.shape[0], batch_size):
            latent = checked_latent(
                latent_of(model, canvases[start : start + batch_size], name), name
            )
            pooled.append(latent.mean(dim=(2, 3)).float().cpu())
    return torch.cat(pooled)


def _train_readout(
    features: torch.Tensor,
    targets: torch.Tensor,
    num_outputs: int,
    *,
    permute: bool,
    generator: torch.Generator,
    epochs: int,
    lr: float,
    batch_size: int,
) -> nn.Linear:
    """Fit a zero-initialised linear read-out with cross-entropy and Adam (deterministic)."""
    readout = torch.nn.utils.skip_init(nn.Linear, features.shape[1], num_outputs)  # no global RNG
    nn.init.zeros_(readout.weight)
    nn.init.zeros_(readout.bias)
    optimizer = torch.optim.Adam(readout.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(features.shape[0], generator=generator)
            for start in range(0, features.shape[0], batch_size):
                index = order[start : start + batch_size]
                batch = features[index]
                if permute:  # one new channel order per minibatch, as PermuteNet
                    batch = batch[:, torch.randperm(batch.shape[1], generator=generator)]
                loss = F.cross_entropy(readout(batch), targets[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return readout.requires_grad_(False)


def _predict(
    readout: nn.Linear, features: torch.Tensor, *, permute: bool, generator: torch.Generator
) -> torch.Tensor:
    """Return the read-out's predicted class of each row; with ``permute``, one order per row."""
    if permute:
        orders = torch.stack(
            [torch.randperm(features.shape[1], generator=generator) for _ in features]
        )
        features = features.gather(1, orders)
    return readout(features).argmax(dim=1)


def _check_probe_args(
    grid: object,
    train_fraction: object,
    epochs: object,
    lr: object,
    batch_size: object,
    canvas_scale: object,
    seed: object,
    permute: object,
) -> None:
    if isinstance(grid, bool) or not isinstance(grid, int):
        raise TypeError(f"grid must be an int; got {type(grid).__name__}")
    if grid < 2:
        raise ValueError(f"grid must be an integer >= 2; got {grid}")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    if not isinstance(permute, bool):
        raise TypeError(f"permute must be a bool; got {type(permute).__name__}")
    for name, value in (("train_fraction", train_fraction), ("lr", lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    if not 0 < train_fraction < 1:  # type: ignore[operator]
        raise ValueError(f"train_fraction must lie strictly between 0 and 1; got {train_fraction}")
    if not 0 < lr < float("inf"):  # type: ignore[operator]
        raise ValueError(f"lr must be a positive finite number; got {lr}")
    if canvas_scale is not None:
        if isinstance(canvas_scale, bool) or not isinstance(canvas_scale, (int, float)):
            raise TypeError(
                f"canvas_scale must be a number or None; got {type(canvas_scale).__name__}"
            )
        if not 0 < canvas_scale <= 1 / grid + 1e-9:  # type: ignore[operator]
            raise ValueError(
                f"canvas_scale must lie in (0, 1/grid] = (0, {1 / grid:.4g}] so the image fits its "
                f"cell; got {canvas_scale}"
            )


def _check_class_labels(labels: object, num_images: int) -> torch.Tensor:
    labels = check_tensor(labels, "labels")
    if tuple(labels.shape) != (num_images,):
        raise ValueError(
            f"labels must be (N,) = ({num_images},), one class id per image; got "
            f"{tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor; got dtype {labels.dtype}")
    labels = labels.detach().long().cpu()
    if labels.unique().numel() < 2:
        raise ValueError("labels must hold at least 2 classes for a class read-out")
    return labels


def position_readout(
    model: nn.Module,
    images: torch.Tensor,
    *,
    grid: int = 3,
    layer: str | None = None,
    permute: bool = False,
    labels: torch.Tensor | None = None,
    seed: int = 0,
    train_fraction: float = 0.7,
    epochs: int = 200,
    lr: float = 0.05,
    batch_size: int = 64,
    canvas_scale: float | None = None,
) -> ProbeResult:
    """Train a linear read-out of the cell an image was pasted into from the pooled latent.

    For every image and every cell of a ``grid`` x ``grid`` layout the image is shrunk into that
    cell of an empty canvas (zero in the model's normalised input space: the normalisation mean for
    a :class:`~regionattack.NormalizedModel`, else 0). The model runs up to ``layer`` under
    ``torch.no_grad`` with its state restored afterwards; the latent is averaged over space into K
    features. Images (not canvases) are split into train and held-out sets, features are
    standardised with the train split's mean and std, and a zero-initialised ``nn.Linear(K,
    grid**2)`` is trained with cross-entropy and Adam on minibatches. Everything random (split,
    minibatch order, permutations) comes from one generator seeded with ``seed``.

    With ``permute=True`` (PermuteNet control) the channels are shuffled before the read-out: a new
    random order for each training minibatch and an independent order for each held-out canvas,
    so the accuracy is an average over many orders rather than the luck of one. Only what a linear
    map can read regardless of channel order (e.g. the sum of the standardised channels) survives.

    Args:
        model: Segmentation model taking (N, 3, H, W) images in [0, 1]; left as it was.
        images: (N, C, H, W) images in [0, 1]; at least 4 so both splits get 2.
        grid: Cells per side, an integer >= 2; ``chance = 1 / grid**2``.
        layer: Dotted name of the latent layer; None for the default (see
            :func:`regionattack.latent.find_layer`).
        permute: Shuffle the pooled channels before the read-outs.
        labels: Optional (N,) integer class id per image; a second read-out of the class is then
            trained on the same features (same ``permute``).
        seed: Seed of the generator for the split, minibatch order and permutations.
        train_fraction: Share of the images in the training split, strictly between 0 and 1.
        epochs: Passes over the training canvases.
        lr: Adam learning rate.
        batch_size: Minibatch size of the read-out, and canvases per forward pass.
        canvas_scale: Side of the pasted image as a fraction of the canvas side, at most
            ``1 / grid``; None fills the cell. The image is centred in its cell.

    Returns:
        A :class:`ProbeResult` measured on the held-out images.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If images are not (N, C, H, W) in [0, 1], ``grid`` < 2 or larger than the
            images, a split would get fewer than 2 images, ``labels`` is not (N,) with at least
            2 classes, or a setting is out of range.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> net = TinySegmenter(num_classes=2, latent_channels=8).eval()
        >>> images = torch.rand(6, 3, 24, 24, generator=torch.Generator().manual_seed(0))
        >>> result = position_readout(net, images, epochs=5)
        >>> result.chance, result.num_channels, tuple(result.confusion.shape)
        (0.1111111111111111, 8, (9, 9))
        >>> int(result.confusion.sum())  # 2 held-out images x 9 cells
        18
        >>> type(result.accuracy).__name__, result.class_accuracy
        ('float', None)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    images = model_inputs(model, images)
    _check_probe_args(grid, train_fraction, epochs, lr, batch_size, canvas_scale, seed, permute)
    num_images, channels, height, width = images.shape
    if height < grid or width < grid:
        raise ValueError(
            f"images of {height}x{width} pixels cannot fill a {grid}x{grid} grid of cells"
        )
    num_train = round(train_fraction * num_images)
    if num_train < 2 or num_images - num_train < 2:
        raise ValueError(
            f"need at least 2 images in each split; {num_images} images with "
            f"train_fraction={train_fraction} give {num_train} train and "
            f"{num_images - num_train} held-out"
        )
    class_ids = None if labels is None else _check_class_labels(labels, num_images)
    find_layer(model, layer)  # a clear error before any work

    cells = grid * grid
    canvases = _canvases(images, grid, _background(model, channels), canvas_scale)
    features = _pooled(model, canvases, layer, batch_size).view(num_images, cells, -1)
    num_channels = features.shape[-1]

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_images, generator=generator)
    train_images, test_images = order[:num_train], order[num_train:]
    train = features[train_images].reshape(-1, num_channels)
    test = features[test_images].reshape(-1, num_channels)
    mean, std = train.mean(0), train.std(0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    train, test = (train - mean) / std, (test - mean) / std
    cell_ids = torch.arange(cells)
    settings = dict(epochs=epochs, lr=float(lr), batch_size=batch_size)

    readout = _train_readout(
        train,
        cell_ids.repeat(num_train),
        cells,
        permute=permute,
        generator=generator,
        **settings,
    )
    predicted = _predict(readout, test, permute=permute, generator=generator)
    truth = cell_ids.repeat(test_images.numel())
    counts = ConfusionMatrix(cells)  # rows: true cells, columns: predicted cells
    counts.update(predicted, truth)
    confusion = counts.matrix
    per_cell = confusion.diagonal().float() / confusion.sum(1).clamp(min=1).float()
    accuracy = float((predicted == truth).float().mean())
    logger.info("position read-out accuracy %.3f (chance %.3f)", accuracy, 1 / cells)

    class_accuracy = class_chance = None
    if class_ids is not None:
        classes, class_index = class_ids.unique(return_inverse=True)
        class_readout = _train_readout(
            train,
            class_index[train_images].repeat_interleave(cells),
            classes.numel(),
            permute=permute,
            generator=generator,
            **settings,
        )
        class_predicted = _predict(class_readout, test, permute=permute, generator=generator)
        class_truth = class_index[test_images].repeat_interleave(cells)
        class_accuracy = float((class_predicted == class_truth).float().mean())
        class_chance = 1.0 / classes.numel()

    return ProbeResult(
        accuracy=accuracy,
        chance=1.0 / cells,
        class_accuracy=class_accuracy,
        class_chance=class_chance,
        grid=grid,
        permute=permute,
        num_images=num_images,
        num_channels=num_channels,
        confusion=confusion,
        per_cell_accuracy=per_cell,
    )
