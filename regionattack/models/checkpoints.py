"""Read, convert, load and save model checkpoints; files are read with ``weights_only=True``.

:func:`read_state_dict` accepts

* a plain state dict ``{"conv.weight": tensor, ...}``;
* a dict holding one under ``"state_dict"`` (ours), ``"model_state"`` (the paper's code and
  VainF/DeepLabV3Plus-Pytorch) or ``"model"`` (torchvision's reference scripts);
* any of these saved from a ``DataParallel``/``DistributedDataParallel`` model: a ``"module."``
  prefix shared by every key is removed.

Files are opened with ``torch.load(..., map_location="cpu", weights_only=True)``, so only tensors,
plain Python values and NumPy scalars (VainF stores ``best_score`` as ``numpy.float64``) are
unpickled; a file holding any other object is refused and no code in it runs. An empty, truncated
or foreign file gives a ``ValueError`` that names it.

The paper's model (:func:`~regionattack.models.build_model` ``"paper:deeplabv3_resnet50"``) is
built from torchvision parts, whose DeepLabV3 head *is* the ``nn.Sequential`` that VainF's head
wraps as ``classifier``: :func:`convert_paper_state_dict` renames ``classifier.classifier.N...``
to ``classifier.N...``, and :func:`load_weights` does so by itself when the keys need it.

Our own format, written by :func:`save_checkpoint`, is ``{"state_dict": ..., "meta": {...}}``.
``meta`` may describe the model with ``"architecture"`` (a ``build_model`` name), ``"options"``,
``"classes"``, ``"size"`` ([H, W]), ``"mean"``, ``"std"`` and ``"padding"`` (a
:func:`regionattack.defenses.set_padding` mode the model was converted to), from which
:func:`build_from_checkpoint` rebuilds it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import torch
from torch import nn

from regionattack._files import torch_save_atomic
from regionattack._state import forked_rng
from regionattack.models.zoo import build_model
from regionattack.normalization import unwrap, with_normalization

logger = logging.getLogger(__name__)

Source = str | os.PathLike | IO[bytes]
STATE_KEYS = ("state_dict", "model_state", "model")
FAMILIES = ("paper", "smp", "torchvision")
_PAPER_HEAD = "classifier.classifier."  # VainF: DeepLabHead(nn.Module).classifier = nn.Sequential
_SHOWN = 5  # keys listed per kind of mismatch
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format (torch >= 1.6) is a zip archive


def _numpy_safe_globals() -> list:
    """Return what ``weights_only`` loading needs for NumPy scalars (empty without NumPy)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return []
    scalar = np.float64(0).__reduce__()[0]  # numpy._core.multiarray.scalar (numpy.core in 1.x)
    dtypes = {type(np.dtype(code)) for code in "?bhilqpBHILQPefdgFDG"}
    allowed: list = [scalar, np.dtype, *sorted(dtypes, key=str)]
    if hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):  # torch >= 2.6
        # files written under NumPy 1.x and 2.x name the scalar's module differently
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            if module != scalar.__module__:
                allowed.append((scalar, f"{module}.scalar"))
    return allowed


@contextlib.contextmanager
def _numpy_allowed() -> Iterator[None]:
    safe_globals = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    if safe_globals is None:  # pragma: no cover - older torch refuses NumPy scalars
        yield
        return
    # only what is not yet allowed: leaving the context removes what it added, and the user's own
    # torch.serialization.add_safe_globals entries must survive
    already = set(torch.serialization.get_safe_globals())
    with safe_globals([entry for entry in _numpy_safe_globals() if entry not in already]):
        yield


def _torch_reason(message: str) -> str:
    """The gist of torch's error: its first sentence, without torch's advice on weights_only."""
    found = re.search(
        r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", message, re.S
    )
    reason = " ".join((found.group(1) if found else message).split())
    reason = reason.split(". ")[0].removesuffix(".")[:200]
    return "" if "weights_only" in reason else reason


@contextlib.contextmanager
def _opened(source: Source) -> Iterator[tuple[IO[bytes], int] | None]:
    """Yield a seekable binary file of ``source`` and where the checkpoint starts in it.

    None for a file object that cannot seek. A given file object's position is restored on exit.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            yield handle, 0
        return
    start = _tell(source)
    if start is None:
        yield None
        return
    try:
        yield source, start  # type: ignore[misc]
    finally:
        source.seek(start)  # type: ignore[union-attr]


def _damage(source: Source) -> str | None:
    """Say why the bytes cannot be a whole checkpoint (empty, a cut zip archive), else None."""
    with _opened(source) as opened:
        if opened is None:
            return None  # torch.load reports what it can
        handle, start = opened
        size = handle.seek(0, os.SEEK_END) - start
        if size <= 0:
            return "it is empty (0 bytes): truncated, or never written"
        handle.seek(start)
        if handle.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            return None
        if not zipfile.is_zipfile(handle):
            return (
                f"it is truncated ({size} bytes): torch.save writes a zip archive, and this one "
                "ends before its closing directory; copy or download the file again"
            )
        handle.seek(start)
        return _corrupt_member(handle)
    return None


def _corrupt_member(handle: IO[bytes]) -> str | None:
    """Say which member of a checkpoint's zip archive fails its CRC check, else None.

    torch.load does not check the archive's checksums, so a changed byte in a tensor would load
    as different weights without a word.
    """
    try:
        with zipfile.ZipFile(handle) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"its zip archive is damaged ({error}); copy or download the file again"
    if bad is None:
        return None
    return (
        f"it is corrupt: {bad!r} in its zip archive fails its checksum (changed bytes); copy or "
        "download the file again"
    )


def _cut_short(source: Source, refused: str) -> bool:
    """Whether the name of a refused object was cut off by the end of the file (truncated).

    In the legacy (non-zip) format a class is pickled as the byte ``c``, a line with its module
    and a line with its name. Torch drops the last byte of each line, taking it for the newline,
    so a file that ends inside these lines yields a shortened ``module.name`` (or ``module.``),
    recognised here at the file's end.
    """
    with _opened(source) as opened:
        if opened is None:
            return False
        handle, start = opened
        end = handle.seek(0, os.SEEK_END)
        handle.seek(max(start, end - len(refused) - 3))
        tail = handle.read()
    for index in range(len(tail)):
        if tail[index : index + 1] != b"c":  # the GLOBAL opcode
            continue
        module, newline, name = tail[index + 1 :].partition(b"\n")
        if b"\n" not in name and (module + newline)[:-1] + b"." + name[:-1] == refused.encode():
            return True  # the file ends before the name's newline
    return False


def _load_error(label: str, error: Exception, source: Source) -> ValueError:
    refused = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(error))
    if isinstance(error, pickle.UnpicklingError) and refused and not _cut_short(source, refused[1]):
        return ValueError(
            f"refused to load {label} as untrusted code: it holds Python objects that loading "
            f"would run or build ({refused[1]}), not only tensors and plain containers; "
            "regionattack loads weights only "
            "(torch.load(weights_only=True)) so that no code in a file can run. To use it, load "
            "it yourself in an environment you trust and save the state dict alone: "
            "torch.save(model.state_dict(), path)"
        )
    reason = _torch_reason(str(error))
    return ValueError(
        f"cannot read {label}: it is truncated or not a PyTorch checkpoint "
        f"({type(error).__name__}{': ' + reason if reason else ''})"
    )


def _load(source: Source) -> object:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise FileNotFoundError(f"checkpoint {str(path)!r} {what}")
        label = f"checkpoint {str(path)!r}"
    elif callable(getattr(source, "read", None)):
        label = "the checkpoint file object"
    else:
        hint = " (pass model.state_dict())" if isinstance(source, nn.Module) else ""
        raise TypeError(
            "expected a checkpoint path, a binary file object or a dict; "
            f"got {type(source).__name__}{hint}"
        )
    damage = _damage(source)
    if damage is not None:
        raise ValueError(f"cannot read {label}: {damage}")
    start = None if isinstance(source, (str, os.PathLike)) else _tell(source)
    try:
        with _numpy_allowed():
            return torch.load(source, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, KeyError, OSError, ...
        if isinstance(error, OSError) and error.errno != errno.EINVAL:
            raise  # the file system's error (permissions, I/O); EINVAL: a seek the bytes asked for
        if start is not None:
            source.seek(start)  # type: ignore[union-attr]  # to look at the file again
        # from None: torch's text advises weights_only=False, which regionattack never uses
        raise _load_error(label, error, source) from None


def _tell(source: Source) -> int | None:
    seekable = getattr(source, "seekable", None)
    return source.tell() if callable(seekable) and seekable() else None  # type: ignore[union-attr]


def _contains_tensor(value: object) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        return any(_contains_tensor(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_tensor(item) for item in value)
    return False


def _plain_copy(value: object) -> object:
    """Copy nested dicts/lists/tuples, turning NumPy scalars into Python numbers."""
    if isinstance(value, Mapping):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_copy(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain_copy(item) for item in value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()  # a NumPy scalar such as VainF's best_score
    return value


def _check_state(state: object, what: str = "state_dict") -> Mapping[str, torch.Tensor]:
    if not isinstance(state, Mapping):
        raise TypeError(f"{what} must be a dict of tensors; got {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(key, str):
            raise ValueError(f"{what} keys must be strings; got {key!r} ({type(key).__name__})")
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{what} entry {key!r} must be a tensor; got {type(value).__name__}")
    return state


def _top_level_keys(loaded: Mapping) -> list[str]:
    keys = [str(key) for key in loaded]
    return keys[:20] + (["..."] if len(keys) > 20 else [])


def read_state_dict(path_or_obj: Source | Mapping) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(state_dict, metadata)`` from a checkpoint file or an already loaded checkpoint.

    The state dict is the plain dict itself or the one under ``"state_dict"``,
    ``"model_state"`` or ``"model"`` (first that holds tensors), with a ``"module."`` prefix
    removed when every key has it. The metadata holds the other top-level entries that contain no
    tensors (so an ``"optimizer_state"`` is left out), with NumPy scalars turned into Python
    numbers; a ``"meta"`` dict is merged into it (its entries win). Both are new dicts: the loaded
    or given object is never changed, and the tensors are shared, not copied.

    Args:
        path_or_obj: A path, a binary file object, or a loaded checkpoint dict.

    Returns:
        ``(state_dict, metadata)``, both new dicts.

    Raises:
        FileNotFoundError: If the path is not an existing file.
        TypeError: If ``path_or_obj`` is of another type.
        ValueError: If the file is empty, truncated or not a PyTorch checkpoint, or it holds
            objects that ``weights_only=True`` refuses (the message names the file and the first
            such object), the checkpoint is not a dict, or it holds no tensors (the message lists
            its top-level keys).
        OSError: If the file system fails to read the file (e.g. ``PermissionError``).

    Example:
        >>> import torch
        >>> checkpoint = {"model_state": {"module.conv.weight": torch.ones(2)}, "cur_itrs": 9}
        >>> state, meta = read_state_dict(checkpoint)
        >>> list(state), meta
        (['conv.weight'], {'cur_itrs': 9})
    """
    loaded = path_or_obj if isinstance(path_or_obj, Mapping) else _load(path_or_obj)
    if not isinstance(loaded, Mapping):
        raise ValueError(
            "a checkpoint must be a dict: a state dict, or one holding it under "
            f"{list(STATE_KEYS)}; got {type(loaded).__name__}"
        )
    key = next(
        (
            name
            for name in STATE_KEYS
            if isinstance(loaded.get(name), Mapping) and _contains_tensor(loaded[name])
        ),
        None,
    )
    if key is not None:
        state = dict(_check_state(loaded[key], f"the checkpoint's {key!r}"))
        rest = {name: value for name, value in loaded.items() if name != key}
    else:
        state = {name: value for name, value in loaded.items() if isinstance(value, torch.Tensor)}
        rest = {name: value for name, value in loaded.items() if name not in state}
        _check_state(state)  # string keys
    if not state:
        raise ValueError(
            "found no tensors in the checkpoint: expected a state dict or one under "
            f"{list(STATE_KEYS)}; its top-level keys are {_top_level_keys(loaded)}"
        )
    while all(name.startswith("module.") for name in state):
        state = {name.removeprefix("module."): value for name, value in state.items()}
    dropped = [name for name, value in rest.items() if _contains_tensor(value)]
    if dropped:
        logger.debug("left out checkpoint entries holding tensors: %s", dropped)
    meta = {
        name: value
        for name, value in rest.items()
        if name not in dropped and not (name == "meta" and isinstance(value, Mapping))
    }
    if isinstance(rest.get("meta"), Mapping) and "meta" not in dropped:
        meta.update(rest["meta"])
    return state, _plain_copy(meta)  # type: ignore[return-value]


def convert_paper_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the head keys of a VainF/paper DeepLabV3 state dict to torchvision's names.

    VainF's ``DeepLabHead`` keeps its layers in an ``nn.Sequential`` named ``classifier``, so its
    keys read ``classifier.classifier.N...``; torchvision's ``DeepLabHead`` *is* that Sequential
    (``classifier.N...``). Backbone keys (``backbone.conv1.weight``, ``backbone.layer4...``) are
    the same in both and kept; other keys are kept too.

    Args:
        state_dict: A state dict with string keys and tensor values; not changed.

    Returns:
        A new dict sharing the tensors.

    Raises:
        TypeError: If ``state_dict`` is not a dict.
        ValueError: If a key is not a string, a value not a tensor, or two keys end up equal.

    Example:
        >>> import torch
        >>> state = {"backbone.conv1.weight": torch.zeros(1), "classifier.classifier.4.bias": torch.zeros(3)}
        >>> list(convert_paper_state_dict(state))
        ['backbone.conv1.weight', 'classifier.4.bias']
    """
    _check_state(state_dict)
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = "classifier." + key.removeprefix(_PAPER_HEAD) if key.startswith(_PAPER_HEAD) else key
        if name in converted:
            raise ValueError(f"two keys of the state dict become {name!r} (one of them {key!r})")
        converted[name] = value
    return converted


def _shown(keys: list[str]) -> str:
    return f"{keys[:_SHOWN]}" + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def _check_fit(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    strict: bool,
    model_name: str,
) -> None:
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in state
        if key in expected and state[key].shape != expected[key].shape
    ]
    problems = []
    if strict and missing:
        problems.append(f"{len(missing)} missing key(s) {_shown(missing)}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) {_shown(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es) {_shown(mismatched)}")
    if problems:
        hint = ""
        if len(missing) == len(expected) and expected:
            hint = (
                "; no key in common: is it a checkpoint of another architecture? (model keys "
                f"start {list(expected)[:2]}, checkpoint keys {list(state)[:2]})"
            )
        raise ValueError(f"the checkpoint does not fit {model_name}: " + "; ".join(problems) + hint)
    if missing or unexpected:
        logger.info(
            "loaded non-strictly into %s: %d missing key(s) %s, %d unexpected key(s) %s",
            model_name,
            len(missing),
            _shown(missing),
            len(unexpected),
            _shown(unexpected),
        )


def load_weights(
    model: nn.Module,
    path_or_state: Source | Mapping,
    *,
    family: str | None = None,
    strict: bool = True,
) -> dict:
    """Load a checkpoint (any format :func:`read_state_dict` reads) into ``model`` in place.

    A :class:`~regionattack.NormalizedModel` is loaded through: the weights go to the model it
    wraps (and a ``"model."`` prefix that saving the wrapper adds is removed). The paper's/VainF's
    head keys are converted (:func:`convert_paper_state_dict`) when ``family`` is ``"paper"``, or,
    when ``family`` is None, when the checkpoint has ``classifier.classifier.*`` keys and the
    model has none. The model's training mode and the given state dict are left unchanged.

    Args:
        model: The model to load into.
        path_or_state: A path, a binary file object or a checkpoint / state dict.
        family: ``"paper"`` to always convert VainF's head names, ``"smp"`` or ``"torchvision"``
            to never convert, None (default) to decide from the keys.
        strict: As ``nn.Module.load_state_dict``: whether missing or unexpected keys are errors.
            Shape mismatches are always errors.

    Returns:
        The checkpoint's metadata (see :func:`read_state_dict`).

    Raises:
        TypeError: If ``model`` is not an ``nn.Module`` or ``strict`` not a bool.
        ValueError: If ``family`` is unknown, the checkpoint cannot be read, or it does not fit
            the model; the message lists up to 5 missing and 5 unexpected keys and the shape
            mismatches with both shapes.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> source, target = TinySegmenter(), TinySegmenter()
        >>> load_weights(target, {"state_dict": source.state_dict(), "epoch": 3})
        {'epoch': 3}
        >>> bool((target.segmentation_head.weight == source.segmentation_head.weight).all())
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be None or one of {list(FAMILIES)}; got {family!r}")
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool; got {type(strict).__name__}")
    state, meta = read_state_dict(path_or_state)
    inner = unwrap(model)
    expected = inner.state_dict()
    paper_keys = any(key.startswith(_PAPER_HEAD) for key in state)
    model_has_paper_keys = any(key.startswith(_PAPER_HEAD) for key in expected)
    if family == "paper" or (family is None and paper_keys and not model_has_paper_keys):
        state = convert_paper_state_dict(state)
    if all(key.startswith("model.") for key in state) and not any(
        key.startswith("model.") for key in expected
    ):
        state = {key.removeprefix("model."): value for key, value in state.items()}
    _check_fit(state, expected, strict, type(inner).__name__)
    inner.load_state_dict(state, strict=strict)
    return meta


def build_from_checkpoint(
    path: Source,
    *,
    model: str | None = None,
    num_classes: int | None = None,
    **options: object,
) -> tuple[nn.Module, dict]:
    """Build a model from the registry, load a checkpoint into it, and return it in eval mode.

    The architecture, its options and the number of classes come from the checkpoint's metadata
    (``"architecture"``, ``"options"``, ``"classes"``, as :func:`save_checkpoint` is given them)
    or from the arguments, which take precedence; saved options are used only with the saved
    architecture, updated by ``options``. When the metadata holds ``"padding"`` other than
    ``"zeros"`` (a model trained after :func:`regionattack.defenses.set_padding`), the built model
    is converted the same way. When it holds ``"mean"`` and ``"std"``, the model is wrapped with
    :func:`~regionattack.with_normalization` so that it takes images in [0, 1]. Checkpoints
    without metadata, such as the paper's, need ``model`` and ``num_classes``. Torch's global
    random generator is left as it was (the random initial weights are overwritten).

    Args:
        path: A checkpoint path or binary file object.
        model: A :func:`~regionattack.models.build_model` name (e.g.
            ``"paper:deeplabv3_resnet50"``); default: the checkpoint's ``"architecture"``.
        num_classes: Number of classes; default: ``len(meta["classes"])``.
        **options: Passed to ``build_model`` (e.g. ``output_stride=8``).

    Returns:
        ``(model, metadata)``: the model in eval mode, wrapped when mean/std are known, and the
        checkpoint's metadata.

    Raises:
        FileNotFoundError: If the path is not an existing file.
        TypeError: If ``model`` is not a string.
        ValueError: If the architecture or the number of classes is neither saved nor given, they
            disagree with the saved classes, the saved ``"padding"`` is not a padding mode, or
            the weights do not fit (see :func:`load_weights`).

    Example:
        >>> import tempfile, torch
        >>> from regionattack.models import build_model
        >>> options = {"encoder_depth": 3, "decoder_channels": [16, 8, 4]}
        >>> net = build_model("smp:Unet:mobilenet_v2", 2, **options)
        >>> meta = {"architecture": "smp:Unet:mobilenet_v2", "options": options,
        ...         "classes": ["road", "sky"], "mean": [0.5] * 3, "std": [0.25] * 3}
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = save_checkpoint(f"{folder}/unet.pt", net, meta)
        ...     loaded, meta = build_from_checkpoint(path)
        >>> type(loaded).__name__, loaded.training, meta["classes"]
        ('NormalizedModel', False, ['road', 'sky'])
    """
    state, meta = read_state_dict(path)
    saved = meta.get("architecture")
    name = model if model is not None else saved
    if name is None:
        raise ValueError(
            "the checkpoint does not name its architecture (no 'architecture' in its metadata "
            f"{sorted(map(str, meta))}); pass model=, e.g. 'paper:deeplabv3_resnet50', and "
            "num_classes="
        )
    if not isinstance(name, str):
        raise TypeError(f"model must be a build_model name (str); got {type(name).__name__}")
    classes = meta.get("classes")
    if classes is not None and not isinstance(classes, (list, tuple)):
        raise ValueError(f"the checkpoint's 'classes' must be a list; got {type(classes).__name__}")
    if num_classes is None:
        if classes is None:
            raise ValueError(
                "the checkpoint does not list its classes (no 'classes' in its metadata); "
                "pass num_classes="
            )
        num_classes = len(classes)
    elif classes is not None and len(classes) != num_classes:
        raise ValueError(
            f"num_classes={num_classes} but the checkpoint lists {len(classes)} classes"
        )
    saved_options = meta.get("options") if name == saved else None
    if saved_options is not None and not isinstance(saved_options, Mapping):
        raise ValueError(
            f"the checkpoint's 'options' must be a dict; got {type(saved_options).__name__}"
        )
    with forked_rng():  # the random initial weights are all overwritten by the checkpoint's
        built = build_model(name, num_classes, **{**(saved_options or {}), **options})
    load_weights(built, state)
    built = _with_padding(built, meta.get("padding"))
    mean, std = meta.get("mean"), meta.get("std")
    if (mean is None) != (std is None):
        raise ValueError(
            "the checkpoint's metadata needs both 'mean' and 'std' or neither; got "
            f"mean={mean!r}, std={std!r}"
        )
    result = built if mean is None else with_normalization(built, mean, std)
    return result.eval(), meta


def _with_padding(model: nn.Module, padding: object) -> nn.Module:
    """Convert ``model`` to a saved padding mode (``None``: as built)."""
    if padding is None or padding in ("zeros", "zero"):
        return model
    from regionattack.defenses import set_padding  # defenses sits beside models: no import cycle

    try:
        return set_padding(model, padding)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise ValueError(f"the checkpoint's 'padding' is not usable: {error}") from error


def _check_plain(value: object, where: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} keys must be strings or ints; got {key!r}")
            _check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where} must hold only plain Python values (None, bool, int, float, str, list, tuple, "
        f"dict) so that it loads with weights_only=True; got {type(value).__name__}"
    )


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: Mapping | None = None) -> Path:
    """Write ``{"state_dict": ..., "meta": meta}`` atomically (a temporary file, then a rename).

    The state dict is the unwrapped model's (inside any :class:`~regionattack.NormalizedModel`),
    on the CPU, so the file loads without the wrapper and on any device; a reader never sees a
    half-written file. NumPy scalars in ``meta`` are saved as Python numbers; ``meta`` itself is
    not changed.

    Args:
        path: Destination file; its folder must exist. An existing file is replaced.
        model: The model to save.
        meta: Plain, JSON-like metadata, e.g. ``{"architecture": ..., "options": ...,
            "classes": [...], "size": [H, W], "mean": [...], "std": [...], "padding": ...}``
            (see :func:`build_from_checkpoint`); default ``{}``.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: If the destination folder does not exist.
        TypeError: If ``model`` is not an ``nn.Module`` or ``meta`` not a dict of plain values.

    Example:
        >>> import tempfile
        >>> from regionattack.models import TinySegmenter
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = save_checkpoint(f"{folder}/tiny.pt", TinySegmenter(), {"epoch": 1})
        ...     state, meta = read_state_dict(path)
        >>> meta, "segmentation_head.weight" in state
        ({'epoch': 1}, True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict; got {type(meta).__name__}")
    plain_meta = _plain_copy(meta)
    _check_plain(plain_meta, "meta")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {str(path.parent)!r} does not exist; create it first")
    state = {key: value.detach().cpu() for key, value in unwrap(model).state_dict().items()}
    return torch_save_atomic({"state_dict": state, "meta": plain_meta}, path)
