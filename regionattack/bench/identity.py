"""The identity of a run's data, compared (with the model's state digest) before a resume.

A results file records these next to every setting; a rerun resumes only when all of them agree,
so results of two models or two image sets are never mixed. Files are identified by their
contents: paths are resolved (``data`` and ``./data`` are the same root), files are named relative
to the root, and their bytes are hashed, so the same data under another spelling, or a
``touch``-ed file, still resumes, while an image replaced by another of the same size does not.
Hashing reads every evaluated file once (CamVid's 101 validation pairs: well under a second).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import Dataset


def data_identity(dataset: Dataset, count: int) -> dict[str, object]:
    """Identity of the first ``count`` items of ``dataset``.

    For the library's dataset adapters (which list their ``(image, label)`` files): the resolved
    root, the split, the output size and a SHA-256 of the file names (relative to the root) and
    their contents. For any other dataset: a SHA-256 of the items' tensors (shape, dtype and
    values), which reads every item once.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))
        >>> data_identity(data, 2)["images"]
        2
        >>> data_identity(data, 2) == data_identity(data, 1)
        False
    """
    pairs = getattr(dataset, "pairs", None)
    root = getattr(dataset, "root", None)
    if pairs is not None and root is not None:
        root = Path(root).resolve()
        listing = hashlib.sha256()
        for pair in pairs[:count]:
            for path in pair:
                path = Path(path).resolve()
                name = path.relative_to(root) if path.is_relative_to(root) else path
                listing.update(f"{name.as_posix()}:{path.stat().st_size}\n".encode())
                with path.open("rb") as handle:
                    for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                        listing.update(block)
        return {
            "root": str(root),
            "split": getattr(dataset, "split", None),
            "size": list(getattr(dataset, "size", None) or []) or None,
            "images": count,
            "contents_sha256": listing.hexdigest()[:16],
        }
    digest = hashlib.sha256()
    for index in range(count):
        for tensor in dataset[index]:
            tensor = torch.as_tensor(tensor).detach().cpu().contiguous()
            digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return {"images": count, "tensors_sha256": digest.hexdigest()[:16]}
