"""Choice: one decision point of a supernet.

A ``Choice`` has a stable, human-chosen key (``"stage2.block1"``) and a tuple of options. Options are
JSON scalars (``str`` or ``int``). A choice either holds one module per option (a *module choice*;
its ``forward`` runs the active option only, so options not on the active path get no gradient) or
holds no modules (a *value choice*; the surrounding module reads ``choice.active``).

The key, never the module path, names the decision: wrapping the supernet in a detector or a DDP
wrapper changes nothing about the space.

A choice may be *gated* by another: ``gate=("neck.depth", (2, 3))`` says it takes effect only while the
choice ``neck.depth`` is 2 or 3 (a choice inside a layer that a depth choice can drop). Gates matter to
cost tables: a gated choice's cost is counted only while its gate is open.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from torch import nn

Option = str | int


def _check_option(key: str, option: object) -> Option:
    if isinstance(option, bool) or not isinstance(option, (str, int)):
        raise TypeError(f"Choice {key!r}: option {option!r} must be a str or int, got {type(option).__name__}")
    return option


class Choice(nn.Module):
    """A decision point with key ``key`` and options ``options``.

    ``options`` is either a mapping ``{option: module}`` (module choice) or a sequence of options
    (value choice). The active option is set by :func:`tasknas.core.set_arch`. Choices nested inside an
    option must be there when the outer Choice is built: :func:`choices_of` only searches options known
    to hold choices, which keeps ``set_arch`` cheap on supernets with thousands of modules.
    """

    def __init__(self, key: str, options: Mapping[Option, nn.Module] | Sequence[Option],
                 gate: tuple[str, Sequence[Option]] | None = None):
        super().__init__()
        if not isinstance(key, str) or not key:
            raise ValueError(f"Choice key must be a non-empty str, got {key!r}")
        self.key = key
        if isinstance(options, Mapping):
            opts = tuple(_check_option(key, o) for o in options)
            modules = list(options.values())
            if not all(isinstance(m, nn.Module) for m in modules):
                raise TypeError(f"Choice {key!r}: every option of a module choice must map to an nn.Module")
        else:
            opts = tuple(_check_option(key, o) for o in options)
            modules = []
        if not opts:
            raise ValueError(f"Choice {key!r} needs at least one option")
        names = [str(o) for o in opts]
        if len(set(names)) != len(names):
            raise ValueError(f"Choice {key!r} has duplicate options: {list(opts)}")
        self.options: tuple[Option, ...] = opts
        # ModuleDict keys are strings; str(option) keeps state_dict names readable ("...options.k5.conv").
        self.candidates = nn.ModuleDict({str(o): m for o, m in zip(opts, modules)}) if modules else None
        self.active: Option | None = None
        self.holds_choices = any(isinstance(m, Choice) for option in modules for m in option.modules())
        if gate is not None:
            if not (isinstance(gate, tuple) and len(gate) == 2 and isinstance(gate[0], str) and gate[0] != key
                    and len(gate[1]) > 0):
                raise ValueError(f"Choice {key!r}: gate must be (other key, non-empty options), got {gate!r}")
            gate = (gate[0], tuple(_check_option(gate[0], o) for o in gate[1]))
        self.gate: tuple[str, tuple[Option, ...]] | None = gate

    @property
    def holds_modules(self) -> bool:
        return self.candidates is not None

    def activate(self, option: Option) -> None:
        if option not in self.options:
            raise ValueError(f"Choice {self.key!r}: option {option!r} is not one of {list(self.options)}")
        self.active = option

    def active_module(self) -> nn.Module:
        if self.candidates is None:
            raise TypeError(f"Choice {self.key!r} is a value choice and holds no modules")
        if self.active is None:
            raise RuntimeError(f"Choice {self.key!r} has no active option; call set_arch(model, arch) first")
        return self.candidates[str(self.active)]

    def forward(self, *args, **kwargs):
        return self.active_module()(*args, **kwargs)

    def extra_repr(self) -> str:
        gate = f", gate={self.gate!r}" if self.gate else ""
        return f"key={self.key!r}, options={list(self.options)}, active={self.active!r}{gate}"


def _walk(model: nn.Module, children: Callable[[nn.Module], Iterable[nn.Module]]) -> Iterator[nn.Module]:
    """Pre-order walk (the order of ``model.modules()``, each module once) into ``children(module)``."""
    seen: set[int] = set()
    stack = [model]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        yield module
        stack.extend(reversed([c for c in children(module) if c is not None]))


def _all_children(module: nn.Module) -> Iterable[nn.Module]:
    return module._modules.values()


def _active_children(module: nn.Module) -> Iterable[nn.Module]:
    if isinstance(module, Choice) and module.candidates is not None and module.active is not None:
        return (module.candidates[str(module.active)],)
    return module._modules.values()


def _children_holding_choices(module: nn.Module) -> Iterable[nn.Module]:
    if isinstance(module, Choice) and not module.holds_choices:
        return ()
    return module._modules.values()


def modules_of(model: nn.Module, active_only: bool = False) -> list[nn.Module]:
    """All modules of ``model`` in the order of ``model.modules()``; with ``active_only``, a module choice
    contributes only its active option's subtree (all options while none is active)."""
    return list(_walk(model, _active_children if active_only else _all_children))


def choices_of(model: nn.Module) -> list[Choice]:
    """All Choice modules of ``model`` in module order (nested choices included).

    The walk does not enter the options of a choice that holds no other choice, so it visits only a few
    dozen modules of a supernet with thousands.
    """
    return [m for m in _walk(model, _children_holding_choices) if isinstance(m, Choice)]
