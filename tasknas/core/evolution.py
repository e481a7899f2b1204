"""Evolutionary architecture search over arch values (SPOS / DetNAS).

Guo et al., "Single Path One-Shot NAS with Uniform Sampling" (ECCV 2020) and Chen et al., "DetNAS:
Backbone Search for Object Detection" (NeurIPS 2019). Per generation: score every new candidate,
keep a global elitist top-k over everything ever scored, then propose the next population —
``mutations`` children (a top-k parent, each key resampled with ``mutation_prob``), ``crossovers``
children (two top-k parents, each key from either) and uniform random archs to fill up to
``population``. Every proposed arch is new (visited-set dedup) and passes every constraint *before*
it is scored. Defaults are SPOS's: 50 / top 10 / 25 mutations @ p=0.1 / 25 crossovers / 20
generations; DetNAS uses 20 mutations, 20 crossovers and 10 random.

The loop knows nothing of models: it calls ``score(arch)`` (higher is better; a float, or a mapping
with a ``"score"`` entry and other JSON values kept beside it). Every proposal loop is bounded: a
generation that cannot find enough new valid archs is smaller, and the search ends early when none is
left.

State (config, population, every scored arch, generation, RNG state) is on disk after every scored
candidate: a snapshot at ``state_path`` replaced atomically whenever the population changes, and a
journal ``<stem>.records.jsonl`` beside it that gains one complete line per scored candidate (a line
torn by a crash is dropped on load). :func:`evolve` with ``resume=True`` continues from any such state
and ends with exactly the result of an uninterrupted run. Under an initialised ``torch.distributed``
job the candidates of a generation are sharded across ranks (candidate *i* on rank *i % world*); the
scores are all-gathered after each round, so every rank holds the same records and the result equals
a one-rank run. Only rank 0 writes the state.
"""
from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .arch import Arch, Option, Space, make_arch
from .sampling import crossover, mutate, sample
from .state import atomic_write_text

STATE_VERSION = 1
Constraint = Callable[[Arch], bool]


STRATEGIES = ("evolution", "random")
PRESETS = {
    # Guo et al. (SPOS): 50 / top 10 / 25 mutations @ p=0.1 / 25 crossovers / 20 generations
    "spos": dict(strategy="evolution", population=50, topk=10, mutations=25, crossovers=25, mutation_prob=0.1,
                 generations=20),
    # Chen et al. (DetNAS): 50 / top 10 / 20 mutations / 20 crossovers / 10 random, 20 generations
    "detnas": dict(strategy="evolution", population=50, topk=10, mutations=20, crossovers=20, mutation_prob=0.1,
                   generations=20),
}


@dataclass(frozen=True)
class EvolutionConfig:
    """The settings of one search, validated on construction.

    ``budget`` is the number of distinct archs scored: the search never scores more and ends when it is
    spent. A setting left at ``None`` is derived: without a budget the SPOS values (50 / top 10 / 25
    mutations / 25 crossovers / 20 generations); with a budget a population of ``budget // 5`` (4..50),
    top ``population // 5``, ``population // 2`` mutations and crossovers, and as many generations as the
    budget allows. A population set explicitly larger than the budget is an error (the first, random
    population alone would not fit). :meth:`preset` gives the papers' settings verbatim.
    """

    strategy: str = "evolution"
    population: int | None = None
    topk: int | None = None
    mutations: int | None = None
    crossovers: int | None = None
    mutation_prob: float = 0.1
    generations: int | None = None
    budget: int | None = None
    seed: int = 0
    max_tries: int = 10  # a proposal loop for n archs stops after max_tries * n attempts

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown search strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        for name in ("population", "topk", "mutations", "crossovers", "generations", "budget", "seed", "max_tries"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"evolution {name} must be an int, got {value!r}")
        for name in ("population", "topk", "generations", "budget", "max_tries"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"evolution {name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("mutations", "crossovers"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"evolution {name} must be an int >= 0, got {getattr(self, name)!r}")
        if not isinstance(self.mutation_prob, (int, float)) or not 0.0 <= self.mutation_prob <= 1.0:
            raise ValueError(f"mutation_prob must be in [0, 1], got {self.mutation_prob!r}")
        if self.budget is not None and self.population is not None and self.population > self.budget:
            raise ValueError(f"the population ({self.population}) is larger than the budget ({self.budget}): the "
                             "first, random population alone would exceed it; set population <= budget or leave it "
                             "unset to derive it from the budget")
        for name, value in _plan(self).items():
            object.__setattr__(self, name, value)
        if self.mutations + self.crossovers > self.population:
            raise ValueError(f"mutations + crossovers ({self.mutations} + {self.crossovers}) exceed the "
                             f"population ({self.population})")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EvolutionConfig:
        """A paper's settings (``'spos'``, ``'detnas'``) with ``overrides`` (e.g. ``budget=100``, ``seed=1``)."""
        if name not in PRESETS:
            raise ValueError(f"unknown evolution preset {name!r}; expected one of {', '.join(PRESETS)}")
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown evolution settings {unknown}; expected some of {[f.name for f in fields(cls)]}")
        return cls(**{**PRESETS[name], **overrides})


def _plan(config: EvolutionConfig) -> dict[str, int]:
    """Values for the settings left at ``None`` (see :class:`EvolutionConfig`)."""
    budget = config.budget
    population = config.population
    if population is None:
        population = 50 if budget is None else max(1, min(budget, max(4, min(50, budget // 5))))
    out = {"population": population,
           "topk": config.topk if config.topk is not None else (10 if budget is None else max(2, population // 5)),
           "mutations": population // 2 if config.mutations is None else config.mutations,
           "crossovers": population // 2 if config.crossovers is None else config.crossovers,
           # with a budget, the budget ends the search: every generation scores at least one new arch
           "generations": config.generations if config.generations is not None else (20 if budget is None else budget)}
    return out


@dataclass
class Record:
    """One scored candidate. ``index`` is its position in scoring order."""

    arch: Arch
    score: float
    generation: int
    index: int
    cost: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchResult:
    best: Arch
    best_score: float
    topk: list[Record]
    records: list[Record]
    pareto: list[Record]
    generations: int  # generations completed


def _sort_key(record: Record) -> tuple[float, int]:
    score = record.score if math.isfinite(record.score) else -math.inf
    return (-score, record.index)


def top_records(records: Sequence[Record], k: int) -> list[Record]:
    """The ``k`` best records, best first; ties broken by scoring order."""
    return sorted(records, key=_sort_key)[:k]


def pareto_front(records: Sequence[Record]) -> list[Record]:
    """Records not dominated in (higher score, lower cost), by increasing cost. Records without cost are skipped."""
    costed = sorted((r for r in records if r.cost is not None and math.isfinite(r.score)),
                    key=lambda r: (r.cost, -r.score, r.index))
    front, best = [], -math.inf
    for r in costed:
        if r.score > best:
            front.append(r)
            best = r.score
    return front


def _encode(arch: Arch) -> list[Option]:
    return [option for _, option in arch]


def _decode(values: Sequence[Option], space: Space) -> Arch:
    if len(values) != len(space):
        raise ValueError(f"state holds an arch with {len(values)} options for a space of {len(space)} keys")
    return make_arch(space, dict(zip(space, values)))


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


class _Store:
    """A search state on disk: a snapshot (``state_path``, replaced atomically once per generation) and a
    journal of scored candidates (``<stem>.records.jsonl``, one complete JSON line appended and flushed
    per candidate). A line torn by a crash is dropped on load, so the state read back is always the state
    after some whole number of candidates; writing stays O(1) per candidate however long the search."""

    def __init__(self, path: Path):
        self.path = path
        self.records_path = path.with_name(path.stem + ".records.jsonl")
        self._journal = None

    def exists(self) -> bool:
        return self.path.exists() or self.records_path.exists()

    def write_snapshot(self, data: dict) -> None:
        if self._journal is not None:
            os.fsync(self._journal.fileno())
        atomic_write_text(self.path, json.dumps(data) + "\n")

    def append(self, record: Record) -> None:
        if self._journal is None:
            self._journal = open(self.records_path, "a", encoding="utf-8")
        line = {"arch": _encode(record.arch), "score": record.score if math.isfinite(record.score) else None,
                "generation": record.generation, "cost": record.cost, "info": record.info}
        self._journal.write(json.dumps(line) + "\n")
        self._journal.flush()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def read(self) -> tuple[dict, list[dict]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read search state {str(self.path)!r}: {exc}") from None
        lines: list[dict] = []
        if self.records_path.exists():
            raw = self.records_path.read_bytes()
            good = 0
            for chunk in raw.splitlines(keepends=True):
                if not chunk.endswith(b"\n"):
                    break  # torn last line
                try:
                    lines.append(json.loads(chunk))
                except json.JSONDecodeError:
                    break
                good += len(chunk)
            if good < len(raw):  # drop the torn tail so later appends start on a clean line
                with open(self.records_path, "r+b") as f:
                    f.truncate(good)
        return data, lines


class _Search:
    """The mutable state of one evolutionary search."""

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

    # -- proposals ------------------------------------------------------------------------------
    def _valid(self, arch: Arch, taken: set[Arch]) -> bool:
        return arch not in taken and arch not in self.scored and all(c(arch) for c in self.constraints)

    def _fill(self, out: list[Arch], taken: set[Arch], n: int, make: Callable[[], Arch]) -> None:
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
        cfg, rng = self.config, self.rng
        out: list[Arch] = []
        taken: set[Arch] = set()
        parents = [r.arch for r in top_records(self.records, cfg.topk)] if cfg.strategy == "evolution" else []
        if parents:
            self._fill(out, taken, cfg.mutations,
                       lambda: mutate(parents[rng.randrange(len(parents))], self.space, rng, cfg.mutation_prob))
            self._fill(out, taken, cfg.crossovers,
                       lambda: crossover(parents[rng.randrange(len(parents))],
                                         parents[rng.randrange(len(parents))], rng))
        self._fill(out, taken, cfg.population - len(out), lambda: sample(self.space, rng))
        left = self.left()
        return out if left is None else out[:max(0, left)]

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

    def load(self, store: _Store, check_settings: bool = True) -> None:
        data, lines = store.read()
        where = repr(str(store.path))
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"search state {where} has version {data.get('version')!r}, expected {STATE_VERSION}")
        if Space(data["space"]) != self.space:
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
        _set_rng_state(self.rng, data["rng"])
        self.generation = data["generation"]
        self.done = data["done"]
        self.candidates = [_decode(a, self.space) for a in data["candidates"]]
        for i, r in enumerate(lines):
            score = -math.inf if r["score"] is None else float(r["score"])
            self._add(Record(_decode(r["arch"], self.space), score, r["generation"], i, r["cost"], r["info"]))

    def _add(self, record: Record) -> None:
        self.records.append(record)
        self.scored[record.arch] = record

    def result(self) -> SearchResult:
        if not self.records:
            raise RuntimeError("the search scored no candidate")
        top = top_records(self.records, self.config.topk)
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
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"score function returned {value!r} for {arch!r}; expected a number") from None
    return (score if math.isfinite(score) else -math.inf), info


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

    ``config`` holds the settings (``None``: ``EvolutionConfig()``; see :meth:`EvolutionConfig.preset` for the
    papers'). ``constraints`` are predicates over archs (e.g. ``table.constraint("macs", hi=300e6)``); any with a
    ``check_feasible()`` method is asked first, so a range no arch can meet fails before any scoring.
    ``cost(arch)`` (e.g. ``table.macs``) is recorded for each candidate and defines the Pareto front.
    ``progress`` receives a dict after every scored candidate.
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
    store = _Store(Path(state_path)) if state_path is not None else None
    if resume:
        if store is None:
            raise ValueError("resume=True needs a state_path")
        if not store.path.is_file():
            raise FileNotFoundError(f"no search state to resume at {str(store.path)!r}")
        search.load(store)
    elif store is not None and store.exists():
        raise FileExistsError(f"search state {str(store.path)!r} already exists; pass resume=True to continue it "
                              "or choose another path")
    if world > 1:
        torch.distributed.barrier()  # every rank has read (or checked) the state before rank 0 writes it
    if store is not None and rank != 0:
        store = None  # only rank 0 writes
    try:
        return _run(search, score, cost, store, rank, world, progress)
    finally:
        if store is not None:
            store.close()


def _run(search: _Search, score, cost, store: _Store | None, rank: int, world: int, progress) -> SearchResult:
    config = search.config

    def save() -> None:
        if store is not None:
            store.write_snapshot(search.snapshot())

    if not search.candidates and not search.done:  # a fresh search
        search.candidates = search.propose()
        if not search.candidates:
            raise ValueError(f"no arch of the space met the constraints {[str(c) for c in search.constraints]} in "
                             f"{config.max_tries * config.population} random draws")
        save()

    while not search.done:
        todo = [a for a in search.candidates if a not in search.scored]
        for start in range(0, len(todo), world):
            chunk = todo[start:start + world]
            mine = None
            if rank < len(chunk):
                mine = _score_value(score(chunk[rank]), chunk[rank])
            if world > 1:
                gathered: list = [None] * world
                torch.distributed.all_gather_object(gathered, mine)
            else:
                gathered = [mine]
            for arch, (value, info) in zip(chunk, gathered):
                record = Record(arch, value, search.generation, len(search.records),
                                None if cost is None else float(cost(arch)), info)
                search._add(record)
                if store is not None:
                    store.append(record)
            if progress is not None:
                best = min(search.records, key=_sort_key)
                progress({"generation": search.generation, "generations": config.generations,
                          "done": len(search.candidates) - len(todo) + start + len(chunk),
                          "candidates": len(search.candidates), "scored": len(search.records), "budget": config.budget,
                          "best_score": best.score, "best": best.arch, "last_score": gathered[-1][0]})
        search.generation += 1
        if search.generation >= config.generations or search.left() == 0:
            search.done = True
            search.candidates = []
        else:
            search.candidates = search.propose()
            if not search.candidates:
                search.done = True
        save()
    return search.result()


def load_result(state_path: str | os.PathLike, space: Mapping[str, Sequence[Option]]) -> SearchResult:
    """The result recorded in a saved search state (finished or not)."""
    path = Path(state_path)
    try:
        config = EvolutionConfig(**json.loads(path.read_text())["config"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read search state {str(path)!r}: {exc}") from None
    search = _Search(Space(space), config, [])
    search.load(_Store(path), check_settings=False)
    return search.result()
