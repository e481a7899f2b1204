"""tasknas.core: the one-shot NAS core. Imports only torch, numpy and the standard library."""
from . import spaces  # noqa: E402,F401  (registers the built-in spaces)
from .arch import Arch, Space, active_arch, load_arch, make_arch, save_arch, set_arch, space_of
from .bn import batchnorms, recalibrate_bn, running_stats_kept
from .candidate import score_candidate
from .choice import Choice, choices_of
from .cost import CostConstraint, CostTable, build_cost_table, count_flops, count_params
from .evolution import PRESETS, EvolutionConfig, evolve, load_result
from .fair import GreedyPathFilter, broadcast_paths, fair_paths
from .progress import ProgressBar
from .records import Record, SearchResult, pareto_front, top_records
from .registry import create_space, list_spaces, register_space
from .sampling import FlopsBinnedSampler, broadcast_arch, crossover, mutate, sample, sample_like
from .strategies import STRATEGIES
from .subnet import fix, is_fixed, load_subnet, save_subnet, save_weights

__all__ = [
    "PRESETS", "STRATEGIES", "Arch", "Choice", "ProgressBar", "CostConstraint", "CostTable", "EvolutionConfig",
    "FlopsBinnedSampler", "GreedyPathFilter", "Record", "broadcast_paths", "fair_paths",
    "SearchResult", "Space", "active_arch", "batchnorms", "broadcast_arch", "build_cost_table", "choices_of",
    "count_flops", "count_params", "create_space", "crossover", "evolve", "fix", "is_fixed", "list_spaces",
    "load_arch", "load_result", "make_arch", "mutate", "pareto_front", "recalibrate_bn", "register_space",
    "running_stats_kept",
    "sample", "sample_like", "save_arch", "save_subnet", "save_weights", "load_subnet", "score_candidate",
    "set_arch", "space_of",
    "top_records",
]
