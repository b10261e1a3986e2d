"""A training run's progress file: what a resumed run needs to go on exactly where one stopped.

:func:`~regionattack.models.train_segmenter` with ``progress_file=`` writes it every few steps
(atomically: an interruption leaves the last complete file) and reads it back on the next call with
the same settings, so a run killed after hours loses at most the steps since the last write.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from regionattack._files import torch_save_atomic

FORMAT = 1


def save_progress(path: str | os.PathLike, settings: dict, step: int, state: dict) -> None:
    """Write the progress after ``step`` finished steps: ``settings`` and the training ``state``.

    ``state`` holds plain values and tensors (state dicts, generator states, losses).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "run.progress"
        >>> save_progress(path, {"steps": 4}, 2, {"losses": [1.0, 0.5]})
        >>> load_progress(path, {"steps": 4})["step"]
        2
    """
    torch_save_atomic({"format": FORMAT, "settings": settings, "step": step, **state}, path)


def load_progress(path: str | os.PathLike, settings: dict) -> dict | None:
    """The saved progress at ``path`` (None when there is no file), checked against ``settings``.

    Raises:
        ValueError: If the file is not a progress file of this format, or was written by a run
            with other settings (steps, seed, data size, initial weights, ...): resuming it would
            mix two runs.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ValueError(
            f"cannot read the training progress file {path} ({type(error).__name__}); delete it "
            "to start the training again"
        ) from error
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a training progress file of this version; delete it to start again"
        )
    if saved["settings"] != settings:
        differs = sorted(
            key
            for key in set(settings) | set(saved["settings"])
            if settings.get(key) != saved["settings"].get(key)
        )
        raise ValueError(
            f"the training progress file {path} belongs to a run with other settings (differing: "
            f"{differs}); use another progress file, or delete it to start again"
        )
    return saved
