"""Budget-aware architecture search over arch values: the loop, its settings and its resumable state.

:func:`evolve` scores candidates proposed by a strategy (:mod:`tasknas.core.strategies`: SPOS/DetNAS
``evolution`` — Guo et al., ECCV 2020; Chen et al., NeurIPS 2019 —, ``regularized`` aging evolution — Real
et al., AAAI 2019 —, ``predictor``-guided evolution — NPENAS, Wei et al., 2020 —, and ``random``) and keeps a
global elitist top-k over everything scored. A generation is one round of proposals scored before the next
round is proposed. Every proposed arch is new (visited-set dedup) and passes every constraint *before* it is
scored. ``budget`` is the number of distinct archs scored: never exceeded, and the search ends with its full
result when it is spent.

The loop knows nothing of models: it calls ``score(arch)`` (higher is better; a float, or a mapping with a
``"score"`` entry and other JSON values kept beside it). A non-finite score is an error naming the arch
(``on_nonfinite='raise'``) or, with ``on_nonfinite='skip'``, a record that ranks last and is never returned
as the best. Every proposal loop is bounded: a generation that cannot find enough new valid archs is smaller,
and the search ends early when none is left.

The state is on disk after every scored candidate (:mod:`tasknas.core.journal`); :func:`evolve` with
``resume=True`` continues from any such state and ends with exactly the result of an uninterrupted run. Under
an initialised ``torch.distributed`` job the candidates of a generation are sharded across ranks (candidate
*i* on rank *i % world*); the scores are all-gathered after each round, so every rank holds the same records
and the result equals a one-rank run. Only rank 0 writes the state.
"""
from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from .arch import Arch, Option, Space, make_arch
from .journal import STATE_VERSION, SearchStore
from .records import Record, SearchResult, pareto_front, sort_key, top_records
from .strategies import STRATEGIES, first_generation

__all__ = ["EvolutionConfig", "PRESETS", "Record", "SearchResult", "evolve", "load_result", "pareto_front",
           "top_records"]
Constraint = Callable[[Arch], bool]
log = logging.getLogger("tasknas.search")
PRESETS = {
    # Guo et al. (SPOS): 50 / top 10 / 25 mutations @ p=0.1 / 25 crossovers / 20 generations
    "spos": dict(strategy="evolution", population=50, topk=10, mutations=25, crossovers=25, mutation_prob=0.1,
                 generations=20),
    # Chen et al. (DetNAS): 50 / top 10 / 20 mutations / 20 crossovers / 10 random, 20 generations
    "detnas": dict(strategy="evolution", population=50, topk=10, mutations=20, crossovers=20, mutation_prob=0.1,
                   generations=20),
}
ON_NONFINITE = ("raise", "skip")


@dataclass(frozen=True)
class EvolutionConfig:
    """The settings of one search, validated on construction.

    ``budget`` is the number of distinct archs scored. A setting left at ``None`` is derived: without a budget,
    a population of 50 (SPOS: top 10, 25 mutations, 25 crossovers, 20 generations); with a budget, a
    population of ``budget // 5`` (``budget // 10`` for ``predictor``), clamped to 4..50 and never above the
    budget, top ``population // 5`` (at least 2; 10 for ``predictor``), and as many generations as the budget
    allows. Also derived: ``mutations`` = ``crossovers`` = ``population // 2``; ``tournament`` =
    ``population // 4`` (at least 2); ``batch`` = ``population // 10`` for ``regularized`` and
    ``population // 3`` (at most 10) for ``predictor`` (at least 1). So without a budget ``evolution`` scores
    up to 50 × 20 archs, ``predictor`` 50 + 19 × 10. A population set explicitly above the budget is an error:
    the first, random population alone would not fit. :meth:`preset` gives the papers' settings verbatim.

    Which setting each strategy reads: ``evolution`` population, topk, mutations, crossovers, mutation_prob;
    ``regularized`` population (first generation and the size of the aging population), tournament, batch;
    ``predictor`` population (first, random generation), topk (parents), batch, proposals, explore;
    ``random`` population (archs per generation).
    """

    strategy: str = "predictor"
    budget: int | None = None
    population: int | None = None
    topk: int | None = None
    mutations: int | None = None
    crossovers: int | None = None
    mutation_prob: float = 0.1
    generations: int | None = None
    tournament: int | None = None
    batch: int | None = None
    proposals: int = 200
    explore: float = 1.0
    on_nonfinite: str = "raise"
    seed: int = 0
    max_tries: int = 10  # a proposal loop for n archs stops after max_tries * n attempts

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown search strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        if self.on_nonfinite not in ON_NONFINITE:
            raise ValueError(f"on_nonfinite must be one of {ON_NONFINITE}, got {self.on_nonfinite!r}")
        ints = ("budget", "population", "topk", "mutations", "crossovers", "generations", "tournament", "batch",
                "proposals", "seed", "max_tries")
        for name in ints:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"evolution {name} must be an int, got {value!r}")
        for name in ("budget", "population", "topk", "generations", "tournament", "batch", "proposals", "max_tries"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"evolution {name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("mutations", "crossovers"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"evolution {name} must be an int >= 0, got {getattr(self, name)!r}")
        for name, lo, hi in (("mutation_prob", 0.0, 1.0), ("explore", 0.0, math.inf)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
        if self.budget is not None and self.population is not None and self.population > self.budget:
            raise ValueError(f"the population ({self.population}) is larger than the budget ({self.budget}): the "
                             "first, random population alone would exceed it; set population <= budget or leave it "
                             "unset to derive it from the budget")
        for name, value in _plan(self).items():
            object.__setattr__(self, name, value)
        if self.mutations + self.crossovers > self.population:
            raise ValueError(f"mutations + crossovers ({self.mutations} + {self.crossovers}) exceed the "
                             f"population ({self.population})")

    @property
    def max_scored(self) -> int:
        """The most archs this search can score: the budget, or what the generations allow (e.g. for a progress
        bar); a search whose proposals run out scores fewer."""
        if self.strategy in ("regularized", "predictor"):
            most = self.population + (self.generations - 1) * self.batch
        else:
            most = self.population * self.generations
        return most if self.budget is None else min(most, self.budget)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EvolutionConfig:
        """A paper's settings (``'spos'``, ``'detnas'``) with ``overrides`` (e.g. ``budget=100``, ``seed=1``)."""
        if name not in PRESETS:
            raise ValueError(f"unknown evolution preset {name!r}; expected one of {', '.join(PRESETS)}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"unknown evolution settings {unknown}; expected some of {known}")
        return cls(**{**PRESETS[name], **overrides})


def _plan(config: EvolutionConfig) -> dict[str, int]:
    """Values for the settings left at ``None`` (see :class:`EvolutionConfig`)."""
    budget, strategy = config.budget, config.strategy
    population = config.population
    if population is None:
        population = 50 if budget is None else min(budget, max(4, min(50, budget // (
            10 if strategy == "predictor" else 5))))

    def pick(name: str, value: int) -> int:
        return value if getattr(config, name) is None else getattr(config, name)

    return {"population": population,
            "topk": pick("topk", 10 if budget is None or strategy == "predictor" else max(2, population // 5)),
            "mutations": pick("mutations", population // 2),
            "crossovers": pick("crossovers", population // 2),
            # with a budget the budget ends the search: every generation scores at least one new arch
            "generations": pick("generations", 20 if budget is None else budget),
            "tournament": pick("tournament", max(2, population // 4)),
            "batch": pick("batch", max(1, population // 10 if strategy == "regularized" else min(10, population // 3)))}


def _encode(arch: Arch) -> list[Option]:
    return [option for _, option in arch]


def _decode(values: Sequence[Option], space: Space, where: str) -> Arch:
    if not isinstance(values, list) or len(values) != len(space):
        raise ValueError(f"{where} holds an arch {values!r}; expected a list of {len(space)} options, one per key "
                         "of the space")
    try:
        return make_arch(space, dict(zip(space, values)))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list, where: str) -> None:
    try:
        rng.setstate((state[0], tuple(state[1]), state[2]))
    except (IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"search state {where} holds an RNG state that cannot be restored: {exc}") from None


class _Search:
    """The mutable state of one search."""

    def __init__(self, space: Space, config: EvolutionConfig, constraints: Sequence[Constraint]):
        self.space = space
        self.config = config
        self.constraints = list(constraints)
        self.rng = random.Random(config.seed)
        self.generation = 0
        self.candidates: list[Arch] = []
        self.records: list[Record] = []
        self.scored: dict[Arch, Record] = {}
        self.done = False
        self.predicted: dict[Arch, float] = {}  # the predictor's guess for each arch it chose (logging only)
        self.surrogate_tau: tuple[float, float] | None = None  # (leave-one-out, chosen archs), predictor only

    # -- proposals ------------------------------------------------------------------------------
    def _valid(self, arch: Arch, taken: set[Arch]) -> bool:
        return arch not in taken and arch not in self.scored and all(c(arch) for c in self.constraints)

    def fill(self, out: list[Arch], taken: set[Arch], n: int, make: Callable[[], Arch]) -> None:
        """Append up to ``n`` new valid archs from ``make()`` to ``out`` (at most ``max_tries * n`` draws)."""
        want = len(out) + n
        for _ in range(self.config.max_tries * n):
            if len(out) >= want:
                return
            arch = make()
            if self._valid(arch, taken):
                out.append(arch)
                taken.add(arch)

    def left(self) -> int | None:
        """How many more archs the budget allows (None: no budget)."""
        return None if self.config.budget is None else self.config.budget - len(self.records)

    def propose(self) -> list[Arch]:
        cfg = self.config
        if not self.records:
            n, strategy = cfg.population, first_generation
        else:
            n = cfg.batch if cfg.strategy in ("regularized", "predictor") else cfg.population
            strategy = STRATEGIES[cfg.strategy]
        left = self.left()
        n = n if left is None else min(n, left)
        return strategy(self, n)[:n] if n > 0 else []

    # -- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {
            "version": STATE_VERSION,
            "config": asdict(self.config),
            "constraints": [str(c) for c in self.constraints],
            "space": self.space.to_json(),
            "generation": self.generation,
            "done": self.done,
            "rng": _rng_state(self.rng),
            "candidates": [_encode(a) for a in self.candidates],
            "num_records": len(self.records),
            "note": "archs are lists of options in the order of the keys of 'space'; scored candidates are in "
                    "the .records.jsonl file beside this one, one JSON object per line",
        }

    def load(self, store: SearchStore, check_settings: bool = True) -> None:
        data, lines = store.read()
        where = repr(str(store.path))
        try:
            saved_space = Space(data["space"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"search state {where} holds a space that cannot be read: {exc}") from None
        if saved_space != self.space:
            raise ValueError(f"search state {where} was written for a different space")
        if check_settings and data["config"] != asdict(self.config):
            diff = {k: (data["config"].get(k), v) for k, v in asdict(self.config).items() if data["config"].get(k) != v}
            raise ValueError(f"search state {where} was written with other settings (saved, given): {diff}")
        if check_settings and data["constraints"] != [str(c) for c in self.constraints]:
            raise ValueError(f"search state {where} was written with constraints {data['constraints']}, "
                             f"now given {[str(c) for c in self.constraints]}")
        if len(lines) < data["num_records"]:
            raise ValueError(f"search state {where} expects {data['num_records']} records but "
                             f"{str(store.records_path)!r} holds {len(lines)}")
        _set_rng_state(self.rng, data["rng"], where)
        self.generation = data["generation"]
        self.done = data["done"]
        self.candidates = [_decode(a, self.space, f"search state {where}") for a in data["candidates"]]
        journal = repr(str(store.records_path))
        for i, r in enumerate(lines):
            arch = _decode(r["arch"], self.space, f"search journal {journal} line {i + 1}")
            if arch in self.scored:
                raise ValueError(f"search journal {journal} line {i + 1} scores {arch!r} a second time")
            if i >= data["num_records"] and (arch not in self.candidates or r["generation"] != self.generation):
                raise ValueError(f"search journal {journal} line {i + 1} is not a candidate of the saved generation "
                                 f"{self.generation}; the journal and {where} do not belong together")
            self._add(Record(arch, r["score"], r["generation"], i, r["cost"], r["info"]))

    def _add(self, record: Record) -> None:
        self.records.append(record)
        self.scored[record.arch] = record

    def result(self) -> SearchResult:
        if not self.records:
            raise RuntimeError("the search scored no candidate")
        top = top_records(self.records, self.config.topk)
        if not math.isfinite(top[0].score):
            raise ValueError(f"none of the {len(self.records)} scored candidates got a finite score (e.g. "
                             f"{top[0].score} for {top[0].arch!r}): there is no best arch")
        return SearchResult(top[0].arch, top[0].score, top, list(self.records), pareto_front(self.records),
                            self.generation)


def _score_value(value: Any, arch: Arch) -> tuple[float, dict]:
    if isinstance(value, Mapping):
        if "score" not in value:
            raise ValueError(f"score function returned a mapping without a 'score' entry for {arch!r}")
        info = {k: v for k, v in value.items() if k != "score"}
        value = value["score"]
    else:
        info = {}
    if isinstance(value, bool):
        raise TypeError(f"score function returned {value!r} for {arch!r}; expected a number")
    try:
        return float(value), info
    except (TypeError, ValueError):
        raise TypeError(f"score function returned {value!r} for {arch!r}; expected a number") from None


def _world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def evolve(space: Mapping[str, Sequence[Option]], score: Callable[[Arch], float | Mapping[str, Any]],
           config: EvolutionConfig | None = None, *, constraints: Sequence[Constraint] = (),
           cost: Callable[[Arch], float] | None = None, state_path: str | os.PathLike | None = None,
           resume: bool = False, progress: Callable[[dict], None] | None = None) -> SearchResult:
    """Run the search and return the global top-k, all records and the Pareto front.

    ``config`` holds the settings (``None``: ``EvolutionConfig()``; :meth:`EvolutionConfig.preset` gives the
    papers'). ``constraints`` are predicates over archs (e.g. ``table.constraint("macs", hi=300e6)``); any with a
    ``check_feasible()`` method is asked first, so a range no arch can meet fails before any scoring.
    ``cost(arch)`` (e.g. ``table.macs``) is recorded for each candidate and defines the Pareto front.
    ``progress`` receives a dict after every scored candidate. ``resume=True`` continues the state at
    ``state_path``; when nothing was saved there yet, the search starts afresh (and logs so).
    """
    space = Space(space)
    if config is None:
        config = EvolutionConfig()
    elif not isinstance(config, EvolutionConfig):
        raise TypeError(f"evolve() config must be an EvolutionConfig, got {type(config).__name__}")
    for c in constraints:
        if hasattr(c, "check_feasible"):
            c.check_feasible()
    search = _Search(space, config, constraints)
    rank, world = _world()
    store = SearchStore(state_path) if state_path is not None else None
    if resume:
        if store is None:
            raise ValueError("resume=True needs a state_path")
        if store.path.is_file():
            search.load(store)
        elif store.records_path.exists():
            raise ValueError(f"cannot resume: the journal {str(store.records_path)!r} exists but the search state "
                             f"{str(store.path)!r} does not (moved or deleted?)")
        else:
            log.warning("no search state saved at %s yet: starting a new search", store.path)
    elif store is not None and store.exists():
        raise FileExistsError(f"search state {str(store.path)!r} already exists; pass resume=True to continue it "
                              "or choose another path")
    if world > 1:
        size = config.batch if config.strategy in ("regularized", "predictor") else config.population
        if size < world:
            log.warning("a generation of the %r strategy has %d candidates for %d ranks: some ranks will wait; set "
                        "batch (a multiple of the number of ranks) to use them all", config.strategy, size, world)
        torch.distributed.barrier()  # every rank has read (or checked) the state before rank 0 writes it
    if store is not None and rank != 0:
        store = None  # only rank 0 writes
    try:
        return _run(search, score, cost, store, rank, world, progress)
    finally:
        if store is not None:
            store.close()


def _gather(mine: Any, world: int) -> list:
    if world == 1:
        return [mine]
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, mine)
    return gathered


def _run(search: _Search, score, cost, store: SearchStore | None, rank: int, world: int, progress) -> SearchResult:
    config = search.config

    def save() -> None:
        if store is not None:
            store.write_snapshot(search.snapshot())

    def propose() -> list[Arch]:
        out = search.propose()
        if world > 1:  # every rank proposes the same; rank 0's proposals and RNG state make sure of it
            box = [[_encode(a) for a in out], _rng_state(search.rng)]
            torch.distributed.broadcast_object_list(box, src=0)
            out = [_decode(a, search.space, "rank 0's proposal") for a in box[0]]
            _set_rng_state(search.rng, box[1], "of rank 0")
        return out

    if not search.candidates and not search.done:  # a fresh search
        search.candidates = propose()
        if not search.candidates:
            raise ValueError(f"no arch of the space met the constraints {[str(c) for c in search.constraints]} in "
                             f"{config.max_tries * config.population} random draws")
        save()

    while not search.done:
        todo = [a for a in search.candidates if a not in search.scored]
        for start in range(0, len(todo), world):
            chunk = todo[start:start + world]
            mine: Any = None
            error: Exception | None = None
            if rank < len(chunk):
                try:
                    mine = _score_value(score(chunk[rank]), chunk[rank])
                except Exception as exc:  # every rank must learn of it, or the others wait in the gather forever
                    error, mine = exc, ("error", f"{type(exc).__name__}: {exc}")
            gathered = _gather(mine, world)
            for r, got in enumerate(gathered[:len(chunk)]):
                if got[0] == "error":
                    if error is not None:
                        raise error
                    raise RuntimeError(f"rank {r} failed to score {chunk[r]!r}: {got[1]}")
            for arch, (value, info) in zip(chunk, gathered):
                if not math.isfinite(value) and config.on_nonfinite == "raise":
                    raise ValueError(f"score function returned {value} for {arch!r}; expected a finite number "
                                     "(EvolutionConfig(on_nonfinite='skip') records such a candidate as failed and "
                                     "goes on)")
                record = Record(arch, value, search.generation, len(search.records),
                                None if cost is None else float(cost(arch)), info)
                search._add(record)
                if store is not None:
                    store.append(_encode(arch), value, record.generation, record.cost, info)
            if progress is not None:
                best = min(search.records, key=sort_key)
                progress({"generation": search.generation, "generations": config.generations,
                          "done": len(search.candidates) - len(todo) + start + len(chunk),
                          "candidates": len(search.candidates), "scored": len(search.records),
                          "budget": config.budget, "best_score": best.score, "best": best.arch,
                          "last_score": gathered[len(chunk) - 1][0], "surrogate_tau": search.surrogate_tau})
        search.generation += 1
        if search.generation >= config.generations or search.left() == 0:
            search.done = True
            search.candidates = []
        else:
            search.candidates = propose()
            if not search.candidates:
                search.done = True
        save()
    return search.result()


def load_result(state_path: str | os.PathLike, space: Mapping[str, Sequence[Option]]) -> SearchResult:
    """The result recorded in a saved search state (finished or not); the files are only read."""
    store = SearchStore(state_path)
    data = store.read_snapshot()
    try:
        config = EvolutionConfig(**data["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"search state {str(store.path)!r} holds settings that cannot be read: {exc}") from None
    search = _Search(Space(space), config, [])
    search.load(store, check_settings=False)
    return search.result()
