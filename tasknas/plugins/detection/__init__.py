"""Detection plugin (MMDetection 3.x): a searchable DetNAS backbone, searchable NAS-FPN and BiFPN necks and
the path-sampling hook.

Load it from a config with ``custom_imports = dict(imports=['tasknas.plugins.detection'])``; importing
this package registers ``SearchableShuffleNetBackbone``, ``SearchableNASFPN`` and ``SearchableBiFPN`` in
``mmdet.registry.MODELS``, ``ArchSamplerHook`` in ``mmdet.registry.HOOKS``, ``TrustedResumeRunner`` in
``mmdet.registry.RUNNERS`` and ``HeldOutSplit`` in ``mmdet.registry.DATASETS``.
"""
from .backbone import SearchableShuffleNetBackbone
from .bifpn import SearchableBiFPN, bifpn_d0_arch
from .hooks import ArchSamplerHook
from .nasfpn import SearchableNASFPN, nasfpn_published_arch
from .runner import TrustedResumeRunner
from .split import HeldOutSplit

__all__ = ["ArchSamplerHook", "HeldOutSplit", "SearchableBiFPN", "SearchableNASFPN", "SearchableShuffleNetBackbone",
           "TrustedResumeRunner", "bifpn_d0_arch", "nasfpn_published_arch"]
