"""Detection plugin (MMDetection 3.x): a searchable DetNAS backbone and the path-sampling hook.

Load it from a config with ``custom_imports = dict(imports=['tasknas.plugins.detection'])``; importing
this package registers ``SearchableShuffleNetBackbone`` in ``mmdet.registry.MODELS`` and
``ArchSamplerHook`` in ``mmdet.registry.HOOKS`` and ``TrustedResumeRunner`` in ``mmdet.registry.RUNNERS`` and
``HeldOutSplit`` in ``mmdet.registry.DATASETS``.
"""
from .backbone import SearchableShuffleNetBackbone
from .hooks import ArchSamplerHook
from .runner import TrustedResumeRunner
from .split import HeldOutSplit

__all__ = ["ArchSamplerHook", "HeldOutSplit", "SearchableShuffleNetBackbone", "TrustedResumeRunner"]
