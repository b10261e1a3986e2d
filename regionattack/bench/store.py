"""Resumable benchmark results: one JSON file, rewritten atomically after every finished unit.

Values that are not finite (an mIoU over no pixels) are stored as ``null``. A unit is a piece of
work with a stable key (``"clean"``, ``"ablation"``, ``"attack/PGD/8"``...).
Restarting the same command finds the file, checks that it came from the same configuration, and
skips the keys already there. The file is replaced with ``os.replace`` from a fully written and
flushed temporary file, so a kill at any moment leaves either the old or the new results, never a
truncated one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regionattack._files import write_json

logger = logging.getLogger(__name__)


class ResultStore:
    """Finished units of a benchmark, persisted in ``path``.

    Args:
        path: The JSON file (created with its folder on the first write); None keeps the units
            in memory only.
        fingerprint: Everything that determines the results (model, data, settings). A file with
            another fingerprint is never mixed with this run.
        assemble: Builds the file's top-level fields from the units (called before each write).
        writer: Whether this process writes (only rank 0 does under ``torchrun``).
        check: ``check(key, value)`` says what is wrong with a unit read back from ``path`` (a
            short text), or None when it is what the run computes; a damaged unit is refused
            when the file is read, before any work.

    Raises:
        ValueError: If ``path`` holds results of another configuration, is not valid JSON, or
            holds a unit that ``check`` refuses (naming the file, the unit and the problem).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "results.json"
        >>> store = ResultStore(path, {"model": "m"})
        >>> store.put("clean", {"miou": 0.5})
        >>> ResultStore(path, {"model": "m"}).get("clean")
        {'miou': 0.5}
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        fingerprint: dict[str, Any],
        *,
        assemble: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        writer: bool = True,
        check: Callable[[str, Any], str | None] | None = None,
    ):
        self.path = None if path is None else Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.assemble = assemble
        self.check = check
        self.writer = writer and path is not None
        self.meta: dict[str, Any] = {}
        self.units: dict[str, Any] = {}
        if self.path is not None:
            self._read()

    def _read(self) -> None:
        """Take the units of an earlier run from ``path``, refusing another configuration."""
        for folder in (self.path.parent, *self.path.parent.parents):
            if folder.exists() and not folder.is_dir():
                raise ValueError(f"{folder} is a file; the results go in a folder (--out DIR)")
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder; expected a results file")
        if self.path.exists():
            try:
                previous = json.loads(self.path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ValueError(f"{self.path} is not valid JSON ({error}); move it away") from None
            if not isinstance(previous, dict) or not isinstance(previous.get("units"), dict):
                raise ValueError(
                    f"{self.path} is not a results file of this library (expected a JSON object "
                    "with 'fingerprint' and 'units'); move it away"
                )
            found = previous.get("fingerprint")
            if found != self.fingerprint:
                changed = sorted(
                    key
                    for key in set(self.fingerprint) | set(found or {})
                    if (found or {}).get(key) != self.fingerprint.get(key)
                )
                raise ValueError(
                    f"{self.path} holds results of another configuration (differs in: "
                    f"{', '.join(changed)}); use another output folder or delete the file"
                )
            self.units = previous.get("units", {})
            self.meta = previous.get("meta", {})
            if not isinstance(self.meta, dict):
                raise ValueError(f"{self.path}: 'meta' is not a JSON object; move the file away")
            for key, value in self.units.items():
                problem = None if self.check is None else self.check(key, value)
                if problem is not None:
                    raise ValueError(
                        f"{self.path}: the stored unit {key!r} is damaged ({problem}); delete it "
                        "from the file to compute it again"
                    )

    def __contains__(self, key: str) -> bool:
        return key in self.units

    def get(self, key: str) -> Any:
        """The stored value of a finished unit."""
        return self.units[key]

    def put(self, key: str, value: Any) -> None:
        """Record a finished unit and rewrite the file atomically."""
        self.units[key] = _plain(json.loads(json.dumps(value, default=float)))
        self.write()

    def forget(self, key: str) -> None:
        """Drop a finished unit (e.g. one whose side file is gone), so it is computed again."""
        self.units.pop(key, None)

    def unit(self, key: str, compute: Callable[[], Any]) -> Any:
        """The value of unit ``key``: read back when finished before, else computed and stored.

        The value is returned as stored (JSON, non-finite numbers as None), so a fresh run and a
        resumed one see the same thing. The seconds it took go to ``meta["seconds"][key]``.

        Example:
            >>> import tempfile
            >>> store = ResultStore(Path(tempfile.mkdtemp()) / "results.json", {})
            >>> store.unit("drop", lambda: float("nan")), store.unit("drop", lambda: 1 / 0)
            (None, None)
        """
        if key not in self.units:
            start = time.perf_counter()
            value = compute()
            seconds = time.perf_counter() - start
            self.meta.setdefault("seconds", {})[key] = seconds
            self.put(key, value)
            logger.info("%s done (%.1f s)", key, seconds)
        return self.units[key]

    def write(self) -> None:
        """Rewrite the file (temporary file, flush, fsync, ``os.replace``)."""
        if not self.writer:
            return
        record: dict[str, Any] = dict(self.assemble(self.units)) if self.assemble else {}
        record.update(meta=_plain(self.meta), fingerprint=self.fingerprint, units=self.units)
        write_json(self.path, record, indent=1, default=float)


def _plain(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def field_problem(value: object, kinds: dict[str, type | tuple[type, ...]]) -> str | None:
    """What a stored unit lacks of the ``{field: type}`` it should hold, or None (for ``check``).

    Example:
        >>> field_problem({"file": "a.json"}, {"file": str, "top10": list})
        "missing or wrong fields ['top10']"
    """
    if not isinstance(value, dict):
        return f"expected an object, got {type(value).__name__}"
    wrong = [name for name, kind in kinds.items() if not isinstance(value.get(name), kind)]
    return f"missing or wrong fields {wrong}" if wrong else None


def numbers_problem(value: object, *, names: bool = False) -> str | None:
    """Unless ``value`` is an object of numbers (or None; with ``names``, also strings), why not.

    Example:
        >>> numbers_problem(5), numbers_problem({"all": 0.5, "left": None})
        ('expected an object of numbers, got int', None)
    """
    what = "numbers and names" if names else "numbers"
    if not isinstance(value, dict):
        return f"expected an object of {what}, got {type(value).__name__}"
    for field, item in value.items():
        number = item is None or (isinstance(item, (int, float)) and not isinstance(item, bool))
        if not (number or (names and isinstance(item, str))):
            return f"expected an object of {what}; {field!r} is {type(item).__name__}"
    return None
