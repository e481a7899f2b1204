"""Segmentation plugin (MMSegmentation 1.x): searchable decode heads, the generated mask set and segmentation's
task description; the DetNAS backbone, the path-sampling hook and the drivers are the shared OpenMMLab layer's
(:mod:`tasknas.plugins.openmmlab`), which this package loads.

Load it from a config with ``custom_imports = dict(imports=['tasknas.plugins.segmentation'])``; importing this
package registers in mmseg's registries

* ``SearchableASPPHead`` — DeepLabV3/V3+ ASPP head search (branch dilations, kinds and widths, image pool,
  low-level decoder); mmseg's ``ASPPHead`` is one of its archs;
* ``SearchableCellHead`` — decoder-cell search after Nekrasov et al. (CVPR 2019);
* ``SegShapesDataset`` — the generated shapes set; ``UnroundedIoUMetric`` — ``IoUMetric`` without rounding;

and, through the shared layer, ``SearchableShuffleNetBackbone``, ``ArchSamplerHook``, ``TrustedResumeRunner``
and ``HeldOutSplit`` in mmengine's root registries, which mmseg's inherit from.

Importing it also silences mmseg's ``build_loss would be deprecated soon`` warning: mmseg's own decode heads call
``build_loss`` on every model build, which no config can change.
"""
import warnings

from ..openmmlab import ArchSamplerHook, HeldOutSplit, SearchableShuffleNetBackbone, TrustedResumeRunner
from .aspp import SearchableASPPHead, aspp_state_dict_from_mmseg, mmseg_aspp_arch
from .cells import SearchableCellHead
from .data import SegShapesDataset
from .metric import UnroundedIoUMetric
from .task import SEGMENTATION

warnings.filterwarnings("ignore", message=r"``build_loss`` would be deprecated soon", category=UserWarning)

__all__ = ["SEGMENTATION", "ArchSamplerHook", "HeldOutSplit", "SearchableASPPHead", "SearchableCellHead",
           "SearchableShuffleNetBackbone", "SegShapesDataset", "TrustedResumeRunner", "UnroundedIoUMetric",
           "aspp_state_dict_from_mmseg", "mmseg_aspp_arch"]
