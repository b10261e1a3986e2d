"""One process at a time in a run folder: an exclusive lock that names its holder.

The lock is ``OUT/.lock``, held with ``flock`` for as long as the run lasts. The kernel drops the
lock when its process dies (even by SIGKILL), so a lock left by a dead process is free: the next
run takes it over and logs who held it. While a live process holds it, a second process is
refused at once with :class:`FolderInUse`, naming the holder (PID, host, start time). The file
holds the holder's description as JSON so that the refusal can say who it is.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class FolderInUse(RuntimeError):
    """Another process is running in the same output folder."""


class FolderLock:
    """Exclusive use of ``folder`` by this process (a context manager; re-entry is refused).

    Args:
        folder: The run folder (created if needed).

    Raises:
        FolderInUse: On entry, when another process (or another lock of this one) holds it.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with FolderLock(folder):
        ...     try:
        ...         FolderLock(folder).acquire()
        ...     except FolderInUse as error:
        ...         print("refused")
        refused
        >>> with FolderLock(folder):  # free again once released
        ...     print("taken")
        taken
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._file = None

    def _open(self) -> IO[str]:
        """The lock file, opened for appending; an unwritable folder is a ValueError naming it."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        except OSError as error:
            raise ValueError(
                f"cannot write to the output folder {self.folder}: {error.strerror or error}; "
                "choose a folder you can write to"
            ) from None

    def acquire(self) -> None:
        """Take the lock or raise :class:`FolderInUse`; log when a dead holder's lock is taken."""
        if self._file is not None:
            raise FolderInUse(f"{self.folder} is already locked by this FolderLock")
        for folder in (self.folder, *self.folder.parents):
            if folder.exists() and not folder.is_dir():
                raise ValueError(f"{folder} is a file; the results go in a folder (--out DIR)")
        while True:
            file = self._open()
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(file)
                file.close()
                raise FolderInUse(
                    f"{self.folder} is in use by {_describe(holder)}; wait for it to finish, or "
                    "choose another output folder"
                ) from None
            except BaseException:
                file.close()
                raise
            # The holder may have released and unlinked the file between our open and our flock:
            # then we hold a lock on a file nobody else will see; start again on the new one.
            try:
                same = os.fstat(file.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            file.close()
        previous = _read_holder(file)
        if previous:
            logger.warning(
                "%s: taking over the lock left by %s, which is no longer running",
                self.folder,
                _describe(previous),
            )
        file.seek(0)
        file.truncate()
        file.write(json.dumps(_this_process()))
        file.flush()
        self._file = file

    def release(self) -> None:
        """Give the lock up (and remove the lock file); nothing happens when it is not held."""
        if self._file is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self._file.close()  # closing releases the flock
            self._file = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _this_process() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _read_holder(file) -> dict:
    file.seek(0)
    try:
        holder = json.loads(file.read() or "{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"pid": "unknown"}
    return holder if isinstance(holder, dict) else {"pid": "unknown"}


def _describe(holder: dict) -> str:
    """``"PID 12 on host, started 2026-12-05T10:00:00+00:00"``."""
    return (
        f"PID {holder.get('pid', 'unknown')} on {holder.get('host', 'an unknown host')}, "
        f"started {holder.get('started', 'at an unknown time')}"
    )
