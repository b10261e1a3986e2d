import torch

from regionattack._figures import plot_ablation, plot_attacks


def test_figures_are_written(tmp_path):
    summary = [
        {
            "ranking": "none",
            "region": "overall",
            "k": 0,
            "miou": 0.5,
            "miou_left": 0.5,
            "miou_right": 0.5,
            "draws": 1,
        },
    ]
    for k in (2, 4):
        for ranking, region in (("flip", "overall"), ("gradient", "overall"), ("gradient", "left")):
            summary.append(
                {
                    "ranking": ranking,
                    "region": region,
                    "k": k,
                    "miou": 0.4,
                    "miou_left": 0.3,
                    "miou_right": 0.45,
                    "draws": 1,
                }
            )
        summary.append(
            {
                "ranking": "random",
                "region": "overall",
                "k": k,
                "miou": 0.49,
                "miou_std": 0.01,
                "miou_left": 0.5,
                "miou_right": 0.5,
                "draws": 5,
            }
        )
    plot_ablation(summary, tmp_path / "ablation.png")
    labels = torch.randint(0, 3, (5, 16, 16))
    labels[0, 0] = 255
    predictions = {"clean": labels.clamp(max=2), "attack": torch.zeros_like(labels)}
    plot_attacks(torch.rand(5, 3, 16, 16), labels, predictions, 3, tmp_path / "attacks.png")
    for name in ("ablation.png", "attacks.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
