"""Every searchable space of the suite, for ``tasknas spaces``: its size and what it plugs into.

The core's registered supernets (``tasknas.core.list_spaces``) come first. A plugin adds its own spaces
(necks, decode heads, binary cells) as a list ``SPACES`` of :class:`SpaceEntry` in the module named in
``PLUGIN_SPACES``; a plugin whose dependencies are not installed is reported, not fatal. An entry builds its
space only when listed (a neck or head is built at a small width: the space does not depend on it).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .core import Space, create_space, list_spaces, space_of

# plugin -> the module holding its SPACES list
PLUGIN_SPACES = {"detection": "tasknas.plugins.detection.task", "segmentation": "tasknas.plugins.segmentation.task",
                 "binary": "tasknas.plugins.binary.spaces"}

CORE_USE = {"detnas_shufflenet": "backbone: SearchableShuffleNetBackbone (mmdet and mmseg); core supernet"}


@dataclass(frozen=True)
class SpaceEntry:
    name: str
    plugs_into: str
    build: Callable[[], Space]  # the space (built when listed)


def _core_entries() -> list[SpaceEntry]:
    out = []
    for name in list_spaces():
        use = next((v for k, v in CORE_USE.items() if name.startswith(k)), "core supernet (tasknas.core)")
        out.append(SpaceEntry(name, use, lambda name=name: space_of(create_space(name))))
    return out


def catalog() -> Iterator[tuple[str, SpaceEntry | None, str | None]]:
    """(plugin, entry, None) for every space, or (plugin, None, why) for a plugin that could not be loaded."""
    for entry in _core_entries():
        yield "core", entry, None
    for plugin, module in PLUGIN_SPACES.items():
        try:
            entries = importlib.import_module(module).SPACES
        except (ImportError, AttributeError) as exc:
            yield plugin, None, f"{type(exc).__name__}: {exc}"
            continue
        for entry in entries:
            yield plugin, entry, None
