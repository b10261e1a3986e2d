"""Where a number was measured: versions, machine, device, threads, commit, command and date.

Recorded next to every result (the bench's ``meta.environment``; the ``"environment"`` of every
JSON a script in ``benchmarks/`` writes, through :func:`write_record`), so that a number can be
traced back to the run that produced it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from regionattack._files import write_atomic, write_json

_PACKAGES = ("torchvision", "torchattacks", "segmentation-models-pytorch", "kornia")


def environment(
    device: torch.device | str = "cpu", *, world_size: int = 1, command: str | None = None
) -> dict[str, object]:
    """The environment of a measurement, as plain JSON values.

    Args:
        device: The device the numbers were measured on (a CUDA device adds its name).
        world_size: Processes taking part (``torchrun``).
        command: The command line; default: this process's arguments.

    Example:
        >>> record = environment("cpu")
        >>> record["torch"] == torch.__version__, type(record["torch"]), record["device"]
        (True, <class 'str'>, 'cpu')
    """
    device = torch.device(device)
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package.replace("-", "_")] = None
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # a plain str: TorchVersion would pickle as itself
        **versions,
        "platform": platform.platform(),
        "processor": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device)
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "cuda": torch.version.cuda,
        "world_size": world_size,
        "commit": git_commit(),
        "command": command if command is not None else " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what :mod:`platform` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """``git describe --always --dirty`` of the checkout this package runs from, else None."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_record(
    path: str | os.PathLike,
    record: dict[str, object],
    *,
    device: torch.device | str = "cpu",
    command: str | None = None,
) -> Path:
    """Write ``record`` with its :func:`environment` as strict JSON, atomically.

    The file holds ``{**record, "environment": environment(device, command=command)}`` (an
    ``"environment"`` already in ``record`` is replaced), indented by one space; its folder is
    created. A reader, or a rerun after a kill, sees the old file or the new one, never half.

    Args:
        path: Destination file.
        record: The results, plain JSON values.
        device: The device the numbers were measured on.
        command: The command line; default: this process's arguments.

    Returns:
        The destination as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If ``record`` holds a NaN or an infinity (strict JSON has none).
        TypeError: If ``record`` holds a value JSON cannot represent.

    Example:
        >>> import json, tempfile
        >>> path = write_record(Path(tempfile.mkdtemp()) / "out" / "r.json", {"miou": 0.5})
        >>> written = json.loads(path.read_text())
        >>> written["miou"], written["environment"]["torch"] == torch.__version__
        (0.5, True)
    """
    return write_json(
        path, {**record, "environment": environment(device, command=command)}, indent=1
    )


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; create its folder (a results page).

    Example:
        >>> import tempfile
        >>> write_text(Path(tempfile.mkdtemp()) / "out" / "r.md", "# results").read_text()
        '# results'
    """
    return write_atomic(path, text)
