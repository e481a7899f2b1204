"""Binary-network plugin: binary ops (sign with STE / Bi-Real gradients, scaled binary and grouped convs), one
differentiable (DARTS-family) cell search with partial channels, edge normalization, per-edge op sets and
single paths, and three searches on it: BATS (Bulat et al., ECCV 2020), BNAS (Chen et al., AAAI 2020) and
CP-NAS (Zhuo et al., IJCAI 2020); data readers and its own trainer.

Imports torch, timm, numpy and tasknas.core; reading a config file also imports mmengine's ``Config`` (no
other OpenMMLab package). ``tasknas binary --help`` lists the commands; docs/binary.md describes them.
"""
from .bats import BATS_OPS, BatsConvOp, BinaryConvUnit, Stage, TemperatureSchedule, bats_op_set, stage_at
from .darts import FixedNetwork, MixedOp, OpSet, SearchNetwork, darts_op_set
from .genotype import Genotype, arch_to_genotype, derive_genotype, genotype_space, genotype_to_arch
from .ops import BinaryConv2d, channel_shuffle, set_binary_mode, sign_bireal, sign_ste

__all__ = [
    "BATS_OPS", "BatsConvOp", "BinaryConv2d", "BinaryConvUnit", "FixedNetwork", "Genotype", "MixedOp", "OpSet",
    "SearchNetwork", "Stage", "TemperatureSchedule", "arch_to_genotype", "bats_op_set", "channel_shuffle",
    "darts_op_set", "derive_genotype", "genotype_space", "genotype_to_arch", "set_binary_mode", "sign_bireal",
    "sign_ste", "stage_at",
]
