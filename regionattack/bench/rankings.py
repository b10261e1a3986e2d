"""Channel rankings over the bench's images, and how well they predict what zeroing does."""

from __future__ import annotations

import torch

from regionattack import regions
from regionattack._state import frozen
from regionattack.ablation import ablated_predictions
from regionattack.bench.setting import Setting
from regionattack.latent import find_layer, predict
from regionattack.metrics import spearman_correlation
from regionattack.ranking import (
    ChannelRanking,
    channel_statistics,
    mean_weights,
    network_digest,
    pixel_loss,
    ranking_from_statistics,
)


def rank(
    setting: Setting,
    method: str,
    region: str | torch.Tensor | None,
    *,
    grid: int = 3,
) -> ChannelRanking:
    """A ranking over all processes' images (label-free: the model's predictions are the targets)."""
    total: torch.Tensor | None = None
    seen = 0
    for images, _ in setting.iterate(f"rank {method}"):
        batch_total, count = channel_statistics(
            setting.model, images, method=method, region=region, grid=grid
        )
        total = batch_total if total is None else total + batch_total
        seen += count
    if total is None:
        raise ValueError("no images to rank channels on")
    total = setting.workers.sum(total)
    seen = int(setting.workers.sum(torch.tensor(seen)))
    layer = find_layer(setting.model)[0]
    return ranking_from_statistics(
        total,
        seen,
        method=method,
        region=region,
        layer=layer,
        model_digest=network_digest(setting.model),
    )


def ranking_fidelity(
    setting: Setting,
    rankings: dict[str, ChannelRanking],
    channels: torch.Tensor,
    *,
    grid: int = 3,
) -> dict[str, object]:
    """Measured effect of zeroing each channel alone vs what the cheap rankings predict.

    For each sampled channel ``c`` the exact change of the mean cross-entropy (w.r.t. the clean
    prediction, as the label-free rankings use) is measured in every cell of a ``grid x grid``
    lattice; ``damage`` is its mean over cells and ``position`` the standard deviation over cells of
    the image-averaged change (the quantity the overall gradient ranking estimates). Spearman
    correlations compare them with the first-order gradient estimates and the flip scores.

    Returns:
        ``{"channels", "exact_damage", "exact_position", "estimated_damage", "<ranking>_score"...,
        "spearman": {pair: rho}}``.
    """
    size = next(iter(setting.masks.values())).shape
    cells = regions.grid_cells(tuple(size), grid, grid).to(setting.workers.device)
    num_channels = next(iter(rankings.values())).num_channels
    selections = [torch.zeros(num_channels, dtype=torch.bool)] + [c.view(1) for c in channels]
    totals = torch.zeros(len(selections), cells.shape[0], dtype=torch.float64)
    estimate = None
    seen = 0
    for images, _ in setting.iterate("ranking fidelity"):
        with frozen(setting.model):
            clean = predict(setting.model, images)
        weights = mean_weights(cells[:, None], torch.ones_like(clean, dtype=torch.bool))

        def cell_losses(logits: torch.Tensor, weights=weights, clean=clean) -> torch.Tensor:
            return (pixel_loss(logits, clean) * weights).flatten(2).sum(-1).sum(-1)

        outputs = ablated_predictions(setting.model, images, selections, reduce=cell_losses)
        totals += torch.stack(outputs).double().cpu()
        whole = torch.ones(images.shape[-2:], dtype=torch.bool)
        batch_estimate, _ = channel_statistics(setting.model, images, region=whole)
        estimate = batch_estimate[0] if estimate is None else estimate + batch_estimate[0]
        seen += images.shape[0]
    totals = setting.workers.sum(totals)
    estimate = setting.workers.sum(estimate.double().cpu())
    seen = int(setting.workers.sum(torch.tensor(seen)))
    changes = (totals[1:] - totals[:1]) / seen  # (channels, cells): mean rise of CE per cell
    index = channels.long()
    result: dict[str, object] = {
        "channels": index.tolist(),
        "exact_damage": changes.mean(1).tolist(),
        "exact_position": changes.std(1, unbiased=False).tolist(),
        "estimated_damage": (estimate[index] / seen).tolist(),
    }
    spearman = {
        "gradient_estimate~exact_damage": spearman_correlation(
            torch.tensor(result["estimated_damage"]), changes.mean(1)
        )
    }
    for name, ranking in rankings.items():
        scores = ranking.scores[index]
        result[f"{name}_score"] = scores.tolist()
        spearman[f"{name}~exact_position"] = spearman_correlation(
            scores, changes.std(1, unbiased=False)
        )
        spearman[f"{name}~exact_damage"] = spearman_correlation(scores, changes.mean(1))
    result["spearman"] = spearman
    return result
