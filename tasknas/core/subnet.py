"""fix(model, arch): the static subnet of a supernet, holding copies of the chosen weights only.

Every module choice is replaced by a copy of its chosen option, so state_dict names lose the
``.candidates.<option>`` level (``stage0.block0.candidates.k5.conv.weight`` -> ``stage0.block0.conv.weight``)
and the subnet runs exactly the same operations as the supernet on that arch: outputs are bit-identical.
Value choices become single-option choices fixed to their value. The supernet is not modified and is
never copied as a whole (unchosen options are not copied).

A module whose value choices decide which of its *own* weights exist (a depth choice that drops layers, an
input choice that drops a fusion weight) fixes itself: it defines ``fix_arch(chosen) -> nn.Module``, which
receives the whole validated arch as a dict and returns its static copy holding copies of the weights that
arch uses, under the same state_dict names. :func:`fix` calls it instead of copying that module.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

from torch import nn

from .arch import Option, make_arch, space_of
from .choice import Choice, choices_of


def fix(model: nn.Module, arch: Mapping[str, Option] | Iterable[tuple[str, Option]]) -> nn.Module:
    """A static copy of ``model`` with every choice replaced by its option in ``arch``."""
    chosen = make_arch(space_of(model), arch).as_dict()
    memo: dict[int, object] = {}
    owners = _self_fixing(model)
    for owner in owners:
        memo[id(owner)] = owner.fix_arch(dict(chosen))
    if id(model) in memo:
        return memo[id(model)]
    inside = {id(c) for owner in owners for c in choices_of(owner)}
    # Children before parents, so a choice nested inside a chosen option is already resolved in ``memo``
    # when that option is copied.
    for choice in reversed([c for c in choices_of(model) if id(c) not in inside]):
        option = chosen[choice.key]
        if choice.holds_modules:
            memo[id(choice)] = copy.deepcopy(choice.candidates[str(option)], memo)
        else:
            fixed = Choice(choice.key, (option,))
            fixed.activate(option)
            fixed.train(choice.training)
            memo[id(choice)] = fixed
    if isinstance(model, Choice):
        return memo[id(model)]
    return copy.deepcopy(model, memo)


def _self_fixing(model: nn.Module) -> list[nn.Module]:
    """The outermost modules of ``model`` that define ``fix_arch`` and hold choices."""
    found: list[nn.Module] = []
    stack = [model]
    while stack:
        module = stack.pop()
        if callable(getattr(module, "fix_arch", None)) and choices_of(module):
            found.append(module)
            continue
        stack.extend(module.children())
    return found


def is_fixed(model: nn.Module) -> bool:
    """True when ``model`` holds no module choice (value choices with a single option are allowed)."""
    return all(not c.holds_modules and len(c.options) == 1 for c in choices_of(model))


def save_weights(path, module: nn.Module, **fields) -> None:
    """Write ``{"state_dict": module's tensors on CPU, **fields}`` atomically; with plain-data ``fields`` it
    loads with ``torch.load(weights_only=True)``."""
    import torch

    from .state import atomic_write

    payload = {"state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}, **fields}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def save_subnet(path, subnet: nn.Module, arch: Mapping[str, Option], meta: Mapping | None = None) -> None:
    """Write a fixed subnet as plain tensors + its arch + plain metadata (see :func:`load_subnet`)."""
    save_weights(path, subnet, arch=dict(arch.items() if isinstance(arch, Mapping) else arch), meta=dict(meta or {}))


def load_subnet(path) -> dict:
    """Read a file written by :func:`save_subnet` (``weights_only=True``): ``{"arch", "state_dict", "meta"}``."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or not {"arch", "state_dict"} <= set(payload):
        raise ValueError(f"{path} is not a tasknas subnet file (expected keys 'arch' and 'state_dict')")
    return payload
