"""Atomic file writes: a reader (or a rerun after a kill) sees the old file or the new one, never half.

The data goes to a temporary file in the destination's folder (so the rename never crosses file
systems), is flushed and fsynced, then renamed over the destination with :func:`os.replace`. The
temporary file is removed if writing fails.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


def write_atomic(path: str | os.PathLike, data: str | bytes | Callable[[IO[bytes]], None]) -> Path:
    """Replace ``path`` with ``data`` atomically; create its folder if needed.

    Args:
        path: Destination file.
        data: Text (written as UTF-8), bytes, or a function that writes to a binary file object.

    Returns:
        The destination as a :class:`~pathlib.Path`.

    Raises:
        IsADirectoryError: If ``path`` is an existing folder.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "sub" / "note.txt"
        >>> write_atomic(target, "hello").read_text()
        'hello'
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as file:  # "x": never touch a file someone else made
            if callable(data):
                data(file)
            else:
                file.write(data.encode() if isinstance(data, str) else data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_json(path: str | os.PathLike, value: Any, **options: Any) -> Path:
    """Write ``value`` as strict JSON (no NaN: non-finite floats must be replaced first), atomically.

    ``options`` go to :func:`json.dumps` (e.g. ``indent=1``).

    Example:
        >>> import tempfile
        >>> path = write_json(Path(tempfile.mkdtemp()) / "r.json", {"miou": 0.5})
        >>> json.loads(path.read_text())
        {'miou': 0.5}
    """
    return write_atomic(path, json.dumps(value, allow_nan=False, **options))


def torch_save_atomic(value: Any, path: str | os.PathLike) -> Path:
    """:func:`torch.save` ``value`` to ``path`` atomically.

    Example:
        >>> import tempfile
        >>> path = torch_save_atomic({"w": torch.ones(2)}, Path(tempfile.mkdtemp()) / "w.pt")
        >>> torch.load(path, weights_only=True)["w"].tolist()
        [1.0, 1.0]
    """
    return write_atomic(path, lambda file: torch.save(value, file))
