"""What :func:`~regionattack.bench.evaluate_defense` measured, as a table, a figure and a page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regionattack._figures import plot_defenses
from regionattack._files import write_atomic
from regionattack.attacks.registry import attack_class
from regionattack.bench.radius import in_255ths, radius_label
from regionattack.bench.report import format_value

__all__ = ["DefenseReport"]


@dataclass
class DefenseReport:
    """What :func:`evaluate_defense` measured.

    Attributes:
        settings: The evaluation's settings (images, region, eps, k, ...).
        models: ``{name: {"clean", "probe", "probe_permuted", "shift", "ablation", "attacks"}}``.
        seconds: Wall-clock seconds of each unit (``"<model>/clean"``, ``"<model>/attack/PGD/8"``
            ...), as measured when it ran (a resumed run keeps the earlier timings).
    """

    settings: dict[str, Any]
    models: dict[str, dict[str, Any]]
    seconds: dict[str, float]

    @classmethod
    def from_results(cls, record: dict[str, Any]) -> DefenseReport:
        """The report of a finished run's ``results.json``, read from its units alone.

        Raises:
            KeyError: If a unit of a model is missing (the run did not finish).
        """
        settings = dict(record["meta"]["settings"])
        if any(radius > 1 for radius in settings["eps"]):  # runs before 2026-11-30: in 1/255
            settings["eps"] = [radius / 255 for radius in settings["eps"]]
        units = record["units"]
        models = {}
        for name in dict.fromkeys(key.split("/")[0] for key in units):
            attacks = f"{name}/attack/"
            models[name] = {
                "clean": clean_entry(units[f"{name}/clean"]),
                "probe": probe_entry(units[f"{name}/probe"]),
                "probe_permuted": probe_entry(units[f"{name}/probe_permuted"]),
                "shift": units[f"{name}/shift"],
                "ablation": units[f"{name}/ablation"],
                "attacks": {
                    key[len(attacks) :]: value
                    for key, value in units.items()
                    if key.startswith(attacks)
                },
            }
        return cls(settings, models, dict(record["meta"].get("seconds", {})))

    def to_dict(self) -> dict[str, Any]:
        """Settings, per-model results and seconds per unit as plain Python values."""
        return {"settings": self.settings, "models": self.models, "seconds": self.seconds}

    def table(self) -> str:
        """A Markdown table: one row per model, the headline numbers as columns."""
        eps = self.settings["eps"]
        header = ["model", "clean mIoU", "probe acc", "probe acc (permuted)", "shift sensitivity"]
        header += ["top-k flip", "top-k gradient", "random k"]
        for name in self.settings["attacks"]:
            for radius in eps:
                header.append(
                    f"{name} {radius_label(radius)}/255 mIoU"
                    + ("" if attack_class(name).whole_image else " in / out (spec)")
                )
        rows = [header, ["---"] * len(header)]
        for model, result in self.models.items():
            ablation = result["ablation"]
            row = [
                model,
                format_value(result["clean"]["miou"]),
                format_value(result["probe"]["accuracy"], 2),
                format_value(result["probe_permuted"]["accuracy"], 2),
                format_value(result["shift"]["ratio"], 2),
                format_value(ablation["flip"]),
                format_value(ablation["gradient"]),
                f"{format_value(ablation['random_mean'])} ± {format_value(ablation['random_std'])}",
            ]
            for name in self.settings["attacks"]:
                for radius in eps:
                    attack = result["attacks"][f"{name}/{radius_label(radius)}"]
                    if attack_class(name).whole_image:
                        row.append(format_value(attack["miou"]))
                    else:
                        row.append(
                            f"{format_value(attack['miou_inside'])} / {format_value(attack['miou_outside'])} "
                            f"({format_value(attack['specificity'], 1)})"
                        )
            rows.append(row)
        return "\n".join("| " + " | ".join(row) + " |" for row in rows)

    def plot(self, path: str | Path | None = None) -> Any:
        """Draw probe accuracy, shift sensitivity, top-k zeroing, region attacks and PGD vs eps.

        Eps 0 on the attack panels is the clean prediction of the attacked images.

        Returns:
            The matplotlib figure (saved to ``path`` when given).
        """
        radii = [0.0, *(in_255ths(e) for e in self.settings["eps"])]
        curves = [
            (
                model,
                name,
                attack_class(name).whole_image,
                [result["attacks"][f"{name}/{radius_label(e)}"] for e in self.settings["eps"]],
            )
            for model, result in self.models.items()
            for name in self.settings["attacks"]
        ]
        return plot_defenses(
            self.models,
            curves,
            radii,
            k=self.settings["k"],
            region=self.settings["region"],
            path=path,
        )

    def save(self, out: str | Path) -> None:
        """Write ``report.md`` (settings and table) and ``defenses.png`` to the folder ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        s = self.settings
        lines = [
            "# Defense evaluation",
            "",
            f"{s['images']} images ({s['attack_images']} attacked), region `{s['region']}`, "
            f"{s['steps']} attack steps, top-k zeroing with k = {s['k']} of {s['channels']} "
            f"channels vs {s['random_draws']} random draws, probe on {s['probe_images']} images "
            f"({s['probe_grid']}x{s['probe_grid']} grid, chance {1 / s['probe_grid'] ** 2:.2f}).",
            "Shift sensitivity: mean squared distance between the pooled latents of two views of "
            "an image shifted by up to 25%, over the same distance between two different images "
            "(0: shifts change nothing; 1: a shift moves the latent as far as a new image). "
            "Attack cells: mIoU inside / outside the region (specificity = drop inside / drop "
            "outside); PGD: whole-image mIoU.",
            "",
            self.table(),
            "",
            "![defenses](defenses.png)",
            "",
            "Seconds per model: "
            + ", ".join(
                f"{model} {sum(v for k, v in self.seconds.items() if k.startswith(model + '/')):.0f}"
                for model in self.models
            ),
            "",
        ]
        write_atomic(out / "report.md", "\n".join(lines))
        self.plot(out / "defenses.png")


def clean_entry(unit: dict) -> dict[str, float]:
    """The clean mIoUs of a ``<model>/clean`` unit as the report names them."""
    return {"miou": unit["all"], "miou_inside": unit["region"], "miou_outside": unit["not-region"]}


def probe_entry(unit: dict) -> dict[str, Any]:
    """What the report keeps of a probe unit."""
    return {key: unit[key] for key in ("accuracy", "chance", "per_cell_accuracy")}
