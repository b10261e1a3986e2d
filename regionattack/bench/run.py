"""The run engine under ``regionattack bench``, ``regionattack map``, the demo and the defense harness.

A run lives in one output folder. Entering a :class:`Run` takes the folder's lock (a second
process is refused at once, see :mod:`~regionattack.bench.lock`); :meth:`Run.results` reads a
results file of an earlier run with the same fingerprint (another fingerprint is refused, naming
what differs); its :meth:`~regionattack.bench.store.ResultStore.unit` computes each unit of work
once by key and rewrites the file atomically after each one, so an interrupted run resumes where
it stopped. Under ``torchrun``
only the writing process (rank 0) takes the lock and writes; the others compute their shards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regionattack.bench.lock import FolderLock
from regionattack.bench.store import ResultStore


class Run:
    """One run in ``folder``: its lock and its results files.

    Args:
        folder: The output folder (created on entry); None keeps the results in memory (no
            lock, no files).
        writer: Whether this process writes (and locks); False on ``torchrun`` ranks other than 0.

    Raises:
        FolderInUse: On entry, while another process runs in ``folder``.
        ValueError: On entry when ``folder`` cannot be written, or is a file.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with Run(folder) as run:
        ...     run.results({"model": "m"}).unit("clean", lambda: {"miou": 0.5})
        {'miou': 0.5}
        >>> with Run(folder) as run:  # a rerun finds the unit and does not compute it again
        ...     run.results({"model": "m"}).unit("clean", lambda: 1 / 0)
        {'miou': 0.5}
    """

    def __init__(self, folder: str | os.PathLike | None, *, writer: bool = True):
        self.folder = None if folder is None else Path(folder)
        self.writer = writer and folder is not None
        self._lock = FolderLock(self.folder) if self.writer else None

    def __enter__(self) -> Run:
        if self._lock is not None:
            try:
                self._lock.acquire()
            except PermissionError as error:
                raise ValueError(
                    f"cannot write to the output folder {self.folder} ({error.strerror}); "
                    "choose a folder you can write to"
                ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()

    def results(
        self,
        fingerprint: dict[str, Any],
        *,
        name: str = "results.json",
        assemble: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        check: Callable[[str, Any], str | None] | None = None,
    ) -> ResultStore:
        """The results file ``name`` of this folder, with the units of an earlier run if any.

        ``fingerprint`` is everything that determines the numbers; ``assemble`` builds the file's
        top-level fields from the units and ``check`` refuses damaged ones (see
        :class:`~regionattack.bench.store.ResultStore`).
        Compute units with :meth:`ResultStore.unit <regionattack.bench.store.ResultStore.unit>`.

        Raises:
            ValueError: If the file holds another configuration or is not a results file.
        """
        path = None if self.folder is None else self.folder / name
        return ResultStore(path, fingerprint, assemble=assemble, writer=self.writer, check=check)


@contextlib.contextmanager
def entered(run: Run | None, folder: str | os.PathLike, *, writer: bool = True):
    """``run`` as it is when the caller already holds one, else a new :class:`Run` entered here."""
    if run is not None:
        yield run
        return
    with Run(folder, writer=writer) as new:
        yield new
