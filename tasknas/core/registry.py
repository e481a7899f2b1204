"""A registry of search-space factories: a plain dict of functions, filled by importing the family files
(``tasknas.core`` imports ``tasknas.core.spaces``; this module imports none of them)."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

_SPACES: dict[str, Callable[..., nn.Module]] = {}


def register_space(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` under its own name (``<method>_<family>[_<variant>]``)."""
    name = fn.__name__
    if name in _SPACES and _SPACES[name] is not fn:
        raise ValueError(f"search space {name!r} is already registered")
    _SPACES[name] = fn
    return fn


def list_spaces() -> list[str]:
    """The registered names (``tasknas.core`` imports its ``spaces`` package, which registers the built-in ones)."""
    return sorted(_SPACES)


def create_space(name: str, **kwargs) -> nn.Module:
    """Build the supernet registered as ``name``; unknown names list the known ones."""
    known = list_spaces()
    if name not in _SPACES:
        raise ValueError(f"unknown search space {name!r}; known spaces: {known}")
    return _SPACES[name](**kwargs)
