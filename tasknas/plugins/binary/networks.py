"""Networks from a config: the op set, the search network, the genotype space and the retrained network."""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from tasknas.core import Space

from .bats import bats_op_set
from .config import ModelConfig
from .darts import FixedNetwork, OpSet, SearchNetwork, darts_op_set
from .genotype import Genotype, genotype_space
from .ops import BinaryConv2d

BINARY_ACTIVATION_MODES = ("activations", "weights_activations")


def build_op_set(model: ModelConfig, mode: str, binary_activations: bool | None = None) -> OpSet:
    """The op set named by ``model.op_set`` with its binary convs in ``mode``.

    ``darts``: the DARTS 8-op space with binary (XNOR-scaled) convs, the BNAS setting. A ReLU in front of a
    conv would make its binary activations all +1, so when the network binarizes activations
    (``binary_activations``; default: whether ``mode`` does) its ops have no ReLU in front of the convs.
    The full-precision twin of such a network keeps that structure: pass ``binary_activations=True`` with
    mode ``real``. Its 1x1 preprocessing convs are binary only with ``model.binary_preprocess``.
    """
    binary = {"mode": mode, "scale": model.scale, "weight_estimator": model.weight_estimator,
              "activation_estimator": model.activation_estimator}
    if model.op_set == "bats":
        return bats_op_set(groups=model.groups, binary_preprocess=model.binary_preprocess, **binary)
    if binary_activations is None:
        binary_activations = mode in BINARY_ACTIVATION_MODES
    if mode in BINARY_ACTIVATION_MODES and not binary_activations:
        raise ValueError(f"op set 'darts' built with a ReLU before each conv cannot take mode {mode!r} (its binary "
                         "activations would all be +1)")
    conv = partial(BinaryConv2d, **binary)
    return darts_op_set(conv=conv, relu=not binary_activations,
                        preprocess_conv=conv if model.binary_preprocess else nn.Conv2d)


def op_names(model: ModelConfig) -> tuple[str, ...]:
    return build_op_set(model, "real").names


def arch_space(model: ModelConfig) -> Space:
    """The space of genotypes (as core archs) for this model config."""
    return genotype_space(op_names(model), model.steps)


def build_search_network(model: ModelConfig, mode: str, in_channels: int, num_classes: int,
                         generator: torch.Generator, temperature: float = 1.0, partial: int = 1,
                         edge_norm: bool = False, binary_activations: bool | None = None) -> SearchNetwork:
    return SearchNetwork(build_op_set(model, mode, binary_activations), in_channels, num_classes,
                         model.search_channels, model.search_layers, model.steps, model.stem_multiplier, temperature,
                         generator, model.stem_stride, partial, edge_norm)


def build_fixed_network(model: ModelConfig, genotype: Genotype, mode: str, in_channels: int,
                        num_classes: int, binary_activations: bool | None = None) -> nn.Module:
    if genotype.steps != model.steps:
        raise ValueError(f"the genotype has {genotype.steps} nodes per cell but model.steps is {model.steps}")
    return FixedNetwork(build_op_set(model, mode, binary_activations), genotype, in_channels, num_classes,
                        model.channels, model.layers, model.stem_multiplier, model.stem_stride)
