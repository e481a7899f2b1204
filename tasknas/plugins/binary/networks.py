"""Networks from a config: the op set, the search network, the genotype space and the retrained network."""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from tasknas.core import Space

from .bats import bats_op_set
from .config import ModelConfig
from .darts import FixedNetwork, Genotype, OpSet, SearchNetwork, darts_op_set, genotype_space
from .ops import BinaryConv2d


def build_op_set(model: ModelConfig, mode: str) -> OpSet:
    """The op set named by ``model.op_set`` with its binary convs in ``mode``.

    ``darts``: the DARTS 8-op space with binary convs (the BNAS setting); it puts a ReLU in front of every
    conv, which makes binary activations all +1, so it takes only the modes ``weights`` and ``real``.
    """
    binary = {"mode": mode, "scale": model.scale, "weight_estimator": model.weight_estimator,
              "activation_estimator": model.activation_estimator}
    if model.op_set == "bats":
        return bats_op_set(groups=model.groups, binary_preprocess=model.binary_preprocess, **binary)
    if mode not in ("weights", "real"):
        raise ValueError(f"op set 'darts' has a ReLU before each conv, so binary activations would all be +1: "
                         f"use mode 'weights' or 'real' with it, not {mode!r}")
    return darts_op_set(conv=partial(BinaryConv2d, **binary))


def op_names(model: ModelConfig) -> tuple[str, ...]:
    return build_op_set(model, "real").names


def arch_space(model: ModelConfig) -> Space:
    """The space of genotypes (as core archs) for this model config."""
    return genotype_space(op_names(model), model.steps)


def build_search_network(model: ModelConfig, mode: str, in_channels: int, num_classes: int,
                         generator: torch.Generator, temperature: float = 1.0) -> SearchNetwork:
    return SearchNetwork(build_op_set(model, mode), in_channels, num_classes, model.search_channels,
                         model.search_layers, model.steps, model.stem_multiplier, temperature, generator,
                         model.stem_stride)


def build_fixed_network(model: ModelConfig, genotype: Genotype, mode: str, in_channels: int,
                        num_classes: int) -> nn.Module:
    if genotype.steps != model.steps:
        raise ValueError(f"the genotype has {genotype.steps} nodes per cell but model.steps is {model.steps}")
    return FixedNetwork(build_op_set(model, mode), genotype, in_channels, num_classes, model.channels, model.layers,
                        model.stem_multiplier, model.stem_stride)
