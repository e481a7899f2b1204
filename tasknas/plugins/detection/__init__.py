"""Detection plugin (MMDetection 3.x): searchable NAS-FPN and BiFPN necks, the generated COCO shapes set and
detection's task description; the DetNAS backbone, the path-sampling hook and the drivers are the shared
OpenMMLab layer's (:mod:`tasknas.plugins.openmmlab`), which this package loads.

Load it from a config with ``custom_imports = dict(imports=['tasknas.plugins.detection'])``; importing
this package registers ``SearchableNASFPN``, ``SearchableBiFPN`` and ``FastCocoMetric`` in
``mmdet.registry.MODELS`` and, through
the shared layer, ``SearchableShuffleNetBackbone``, ``ArchSamplerHook``, ``TrustedResumeRunner`` and
``HeldOutSplit`` in mmengine's root registries, which mmdet's inherit from.
"""
from ..openmmlab import ArchSamplerHook, HeldOutSplit, SearchableShuffleNetBackbone, TrustedResumeRunner
from .bifpn import SearchableBiFPN, bifpn_d0_arch
from .coco_metric import FastCocoMetric
from .nasfpn import SearchableNASFPN, nasfpn_published_arch
from .task import DETECTION

__all__ = ["DETECTION", "ArchSamplerHook", "FastCocoMetric", "HeldOutSplit", "SearchableBiFPN", "SearchableNASFPN",
           "SearchableShuffleNetBackbone", "TrustedResumeRunner", "bifpn_d0_arch", "nasfpn_published_arch"]
