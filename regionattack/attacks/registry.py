"""The attacks by name: one table, filled where each attack is defined and by installed plug-ins.

Every consumer (the bench, the map, the defense harness, the command line) asks this table; none
keeps a list of its own. An attack joins it with one decorator line where it is defined::

    @register("MyAttack")
    class MyAttack(SegmentationAttack): ...

and an attack shipped in another package joins it through the entry-point group
``regionattack.attacks`` in that package's ``pyproject.toml`` (read once, when the table is first
looked at, the way pytest finds its plug-ins)::

    [project.entry-points."regionattack.attacks"]
    MyAttack = "mypackage.attacks:MyAttack"

Every registered class takes ``model`` first and the keyword-only ``eps``, ``steps``, ``seed`` and
``region`` (None: the whole image), so :func:`build_attack` builds any of them the same way.
Options the class declares in ``name_options`` may also be given in brackets after the name,
joined by ``+`` (``"CosPGD[apgd]"``, ``"RegionAttack[channels+apgd]"``, ``"SEA[mce+js]"``).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torch import nn

from regionattack._checks import check_radius

ENTRY_POINT_GROUP = "regionattack.attacks"
_COMMON = ("eps", "steps", "seed", "region")


class _AttackTable(Mapping):
    """Name -> attack class; read-only to its users, plug-ins loaded on the first look-up."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}
        self._plugins_read = False

    def _add(self, name: str, cls: type) -> None:
        known = self._classes.get(name)
        redefined = known is not None and (known.__module__, known.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )  # the same class defined again (a notebook cell run twice) replaces the old one
        if known is not None and known is not cls and not redefined:
            raise ValueError(
                f"attack name {name!r} is taken by {known.__module__}.{known.__qualname__}; "
                f"register {cls.__module__}.{cls.__qualname__} under another name"
            )
        self._classes[name] = cls

    def _remove(self, name: str) -> None:
        self._read_plugins()
        if name not in self._classes:
            raise ValueError(f"no attack named {name!r} is registered")
        del self._classes[name]

    def _read_plugins(self) -> None:
        if self._plugins_read:
            return
        self._plugins_read = True
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                cls = entry.load()
                if cls not in self._classes.values():  # not registered by its own decorator
                    _check_attack_class(entry.name, cls)
                    self._add(entry.name, cls)
            except Exception as error:  # a broken plug-in must not break the library
                warnings.warn(
                    f"regionattack: the attack plug-in {entry.name!r} ({entry.value}) could not "
                    f"be loaded and is left out: {type(error).__name__}: {error}",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def __getitem__(self, name: str) -> type:
        self._read_plugins()
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        self._read_plugins()
        return iter(list(self._classes))

    def __len__(self) -> int:
        self._read_plugins()
        return len(self._classes)

    def __repr__(self) -> str:
        return f"ATTACKS({', '.join(self)})"


#: The registered attacks, name -> class (read-only; add with :func:`register`).
ATTACKS = _AttackTable()


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make an attack class buildable by ``name`` everywhere.

    Raises:
        ValueError: If ``name`` is not an identifier-like name (letters, digits, ``-``, ``_``)
            or is taken by another class.
        TypeError: If the class does not take ``model`` and the keyword-only ``eps``, ``steps``,
            ``seed`` and ``region``.

    Example:
        >>> from regionattack.attacks import UniformNoise
        >>> @register("QuietNoise")
        ... class QuietNoise(UniformNoise):
        ...     '''Uniform noise under another name.'''
        >>> ATTACKS["QuietNoise"] is QuietNoise
        True
        >>> unregister("QuietNoise")
    """

    def decorate(cls: type) -> type:
        _check_attack_class(name, cls)
        ATTACKS._add(name, cls)
        return cls

    return decorate


def unregister(name: str) -> None:
    """Remove the attack registered as ``name`` (e.g. one a test defined).

    Raises:
        ValueError: If no attack of that name is registered.
    """
    ATTACKS._remove(name)


def _check_attack_class(name: object, cls: object) -> None:
    if (
        not isinstance(name, str)
        or not name
        or not name.replace("-", "").replace("_", "").isalnum()
    ):
        raise ValueError(f"an attack name is letters, digits, '-' and '_'; got {name!r}")
    if not inspect.isclass(cls):
        raise TypeError(f"attack {name!r} must be a class; got {type(cls).__name__}")
    parameters = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        missing = [key for key in _COMMON if key not in parameters]
        if missing:
            raise TypeError(
                f"attack {name!r} ({cls.__qualname__}) must take the keyword arguments "
                f"{', '.join(_COMMON)}; it lacks {', '.join(missing)}"
            )


def parse_attack_name(name: str) -> tuple[str, dict[str, Any]]:
    """Split ``"Name[option+option]"`` into the registered name and its constructor options.

    Each bracket word is a value of one of the class's ``name_options`` (keyword -> choices); a
    keyword in the class's ``repeatable_name_options`` collects several values into a tuple.

    Raises:
        ValueError: For an unknown attack (listing the registered ones), an option the attack does
            not take, or an option given twice.

    Example:
        >>> parse_attack_name("RegionAttack[channels+apgd]")
        ('RegionAttack', {'objective': 'channels', 'optimizer': 'apgd'})
        >>> parse_attack_name("SEA[mce+js]"), parse_attack_name("PGD")
        (('SEA', {'losses': ('mce', 'js')}), ('PGD', {}))
    """
    base, bracket, rest = str(name).partition("[")
    if base not in ATTACKS or (bracket and not rest.endswith("]")):
        raise ValueError(
            f"unknown attack {name!r}; choose from {list(ATTACKS)}, with options in brackets "
            "joined by '+' (e.g. CosPGD[apgd], RegionAttack[channels+apgd], SEA[mce])"
        )
    cls = ATTACKS[base]
    takes: dict[str, tuple[str, ...]] = dict(getattr(cls, "name_options", {}))
    repeatable = set(getattr(cls, "repeatable_name_options", ()))
    options: dict[str, Any] = {}
    for word in rest[:-1].split("+") if bracket else []:
        key = next((key for key, values in takes.items() if word in values), None)
        if key in repeatable and word not in options.get(key, ()):
            options[key] = (*options.get(key, ()), word)
            continue
        if key is None or key in options:
            allowed = [value for values in takes.values() for value in values]
            raise ValueError(
                f"unknown attack option {word!r} in {name!r} (not an option of {base}, or given "
                f"twice; options: {allowed or 'none'})"
            )
        options[key] = word
    return base, options


def parse_region_attack_name(name: str) -> tuple[str, dict[str, Any]]:
    """:func:`parse_attack_name`, refusing attacks that hide classes instead of breaking regions.

    The bench, the map and the defense harness measure an attack on a region; an attack with a
    ``classes_argument`` (:class:`~regionattack.HideClasses`, :class:`~regionattack.Metzen`)
    needs the classes to hide and is measured by :mod:`regionattack.bench.hiding`.

    Example:
        >>> parse_region_attack_name("Metzen")
        Traceback (most recent call last):
        ...
        ValueError: Metzen hides classes (it takes classes=) rather than breaking a region; measure it with regionattack.bench.hiding (benchmarks/hiding.py)
    """
    base, options = parse_attack_name(name)
    if getattr(ATTACKS[base], "classes_argument", None):
        raise ValueError(
            f"{base} hides classes (it takes {ATTACKS[base].classes_argument}=) rather than "
            "breaking a region; measure it with regionattack.bench.hiding (benchmarks/hiding.py)"
        )
    return base, options


def attack_class(name: str) -> type:
    """The registered class of an attack name (options in brackets allowed).

    Example:
        >>> attack_class("CosPGD[apgd]").__name__, attack_class("PGD").whole_image
        ('CosPGD', True)
    """
    return ATTACKS[parse_attack_name(name)[0]]


def build_attack(
    name: str,
    model: nn.Module,
    *,
    eps: float,
    steps: int,
    region: object = None,
    seed: int | None = None,
    **options: Any,
) -> nn.Module:
    """The registered attack ``name`` (options in brackets allowed) on ``model``.

    Args:
        name: A name of :data:`ATTACKS`, e.g. ``"RegionAttack"`` or ``"CosPGD[apgd]"``.
        model: The segmentation model.
        eps: L-inf radius in image units [0, 1].
        steps: Attack steps.
        region: Region to break (a name or mask); None is the whole image.
        seed: Seed of the attack's randomness.
        **options: Further constructor options of the attack (``outside_weight=2.0``); they must
            not repeat an option set in brackets.

    Raises:
        ValueError: For an unknown name, an option the attack does not take (listing those it
            takes) or an option set twice.

    Example:
        >>> from regionattack.models import TinySegmenter
        >>> attack = build_attack("CosPGD[apgd]", TinySegmenter(), eps=8 / 255, steps=2, seed=0)
        >>> type(attack).__name__, attack.optimizer, attack.alpha == 2 / 255
        ('CosPGD', 'apgd', True)
    """
    base, named = parse_attack_name(name)
    check_radius(eps, "eps")
    twice = sorted(set(named) & set(options))
    if twice:
        raise ValueError(f"{', '.join(twice)} set both in {name!r} and as an option")
    cls = ATTACKS[base]
    settings = {**named, **options}
    parameters = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(settings) - set(parameters))
        if unknown:
            takes = [key for key in parameters if key not in ("model", "self", *_COMMON)]
            raise ValueError(
                f"{base} takes no option {', '.join(map(repr, unknown))}; its options: "
                f"{', '.join(takes) or 'none'}"
            )
    return cls(model, eps=eps, steps=steps, region=region, seed=seed, **settings)
