"""Spaces and archs as plain values.

* A **space** maps each choice key to the tuple of its options: ``{"stage0.block0": ("k3", "k5", ...)}``.
  :class:`Space` is an immutable mapping with keys in sorted order.
* An **arch** is one point of a space: a canonical tuple of ``(key, option)`` pairs sorted by key.
  :class:`Arch` is a ``tuple`` subclass, so it is hashable and can be a dict key or set member; it
  round-trips through a flat JSON object ``{"stage0.block0": "k5", ...}``.

Archs are validated on the way in (:func:`make_arch`): an error names the bad key or option and what
was allowed.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from torch import nn

from .choice import Choice, Option, choices_of


class Space(Mapping):
    """Immutable ``{key: tuple(options)}`` with keys in sorted order."""

    def __init__(self, entries: Mapping[str, Iterable[Option]]):
        data = {}
        for key in sorted(entries):
            options = tuple(entries[key])
            if not options:
                raise ValueError(f"space key {key!r} has no options")
            data[key] = options
        self._data = data

    def __getitem__(self, key: str) -> tuple[Option, ...]:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._data) == {k: tuple(v) for k, v in other.items()}

    def __hash__(self) -> int:
        return hash(tuple(self._data.items()))

    def __repr__(self) -> str:
        return f"Space({len(self)} keys, {self.size():.3g} archs)"

    def size(self) -> int:
        """Number of archs in the space."""
        n = 1
        for options in self._data.values():
            n *= len(options)
        return n

    def to_json(self) -> dict[str, list[Option]]:
        return {k: list(v) for k, v in self._data.items()}


class Arch(tuple):
    """A canonical, hashable point of a space: ``((key, option), ...)`` sorted by key.

    Build one with :func:`make_arch` (validated) or :meth:`Arch.from_json`.
    """

    __slots__ = ()

    def as_dict(self) -> dict[str, Option]:
        return dict(self)

    def __getitem__(self, item):  # arch["stage0.block0"] -> option; integer indexing stays tuple-like
        if isinstance(item, str):
            for key, option in tuple.__iter__(self):
                if key == item:
                    return option
            raise KeyError(item)
        return tuple.__getitem__(self, item)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str, space: Mapping[str, Iterable[Option]]) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"arch JSON is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"arch JSON must be a flat object {{key: option}}, got {type(data).__name__}")
        return make_arch(space, data)

    def __repr__(self) -> str:
        return f"Arch({self.as_dict()!r})"


def make_arch(space: Mapping[str, Iterable[Option]], arch: Mapping[str, Option] | Iterable[tuple[str, Option]]) -> Arch:
    """Validate ``arch`` against ``space`` and return the canonical :class:`Arch`.

    Raises ``ValueError`` naming the first missing key, unknown key, or option not allowed.
    """
    pairs = dict(arch.items() if isinstance(arch, Mapping) else arch)
    unknown = sorted(k for k in pairs if k not in space)
    if unknown:
        raise ValueError(f"arch has key(s) {unknown} that are not in the space; expected keys like "
                         f"{sorted(space)[:4]} ({len(space)} keys in all)")
    missing = sorted(k for k in space if k not in pairs)
    if missing:
        raise ValueError(f"arch is missing key(s) {missing[:8]}{' ...' if len(missing) > 8 else ''} "
                         f"({len(missing)} of {len(space)} keys)")
    for key in sorted(pairs):
        allowed = tuple(space[key])
        option = pairs[key]
        if isinstance(option, bool) or option not in allowed:
            raise ValueError(f"arch key {key!r} has option {option!r}; allowed options are {list(allowed)}")
    return Arch((key, pairs[key]) for key in sorted(pairs))


def space_of(model: nn.Module) -> Space:
    """The space of ``model``: ``{key: options}`` of every Choice it contains.

    Two choices may share a key only when they have the same options (they then always take the same
    option, e.g. a stage stacked N times with one shared arch).
    """
    return _space_of_choices(choices_of(model))


def _space_of_choices(choices: Iterable[Choice]) -> Space:
    entries: dict[str, tuple[Option, ...]] = {}
    for choice in choices:
        if choice.key in entries and entries[choice.key] != choice.options:
            raise ValueError(f"two choices share key {choice.key!r} with different options: "
                             f"{list(entries[choice.key])} and {list(choice.options)}")
        entries[choice.key] = choice.options
    return Space(entries)


def set_arch(model: nn.Module, arch: Mapping[str, Option] | Iterable[tuple[str, Option]]) -> Arch:
    """Activate ``arch`` on every Choice of ``model``; returns the validated arch."""
    choices = choices_of(model)
    arch = make_arch(_space_of_choices(choices), arch)
    mapping = arch.as_dict()
    for choice in choices:
        choice.active = mapping[choice.key]  # validated above
    return arch


def active_arch(model: nn.Module) -> Arch:
    """The arch currently active on ``model`` (error if some choice is not set)."""
    pairs = {}
    for choice in choices_of(model):
        if choice.active is None:
            raise RuntimeError(f"choice {choice.key!r} has no active option")
        pairs[choice.key] = choice.active
    return make_arch(space_of(model), pairs)


def save_arch(path: str | os.PathLike, arch: Arch) -> None:
    """Write ``arch`` as a flat JSON object, atomically."""
    from .state import atomic_write_text

    atomic_write_text(path, arch.to_json() + "\n")


def load_arch(path: str | os.PathLike, space: Mapping[str, Iterable[Option]]) -> Arch:
    """Read a flat JSON arch file and validate it against ``space``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"arch file {str(path)!r} does not exist")
    try:
        return Arch.from_json(path.read_text(), space)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
