"""The OpenMMLab layer: task-neutral mmengine glue that detection and segmentation both plug into.

One copy of what every OpenMMLab task needs for a one-shot search, registered once in mmengine's root
registries (mmdet's and mmseg's registries inherit from them, so configs of either find these types):

* ``SearchableShuffleNetBackbone`` (root ``MODELS``) — the DetNAS ShuffleNetV2 supernet as a backbone;
* ``ArchSamplerHook`` / ``TrainProgressHook`` (root ``HOOKS``) — single-path training, a progress bar;
* ``TrustedResumeRunner`` (root ``RUNNERS``) — the stock Runner, resuming its own checkpoints;
* ``HeldOutSplit`` (root ``DATASETS``) — a held-out search split carved from the train set;
* the drivers behind ``tasknas train | search | export`` (:mod:`.training`, :mod:`.search`, :mod:`.export`),
  the evaluator-driven scorer and calibration batches (:mod:`.scoring`), configs and weights (:mod:`.config`);
* :class:`~.task.Task` — what a task tells the layer about itself (see :mod:`.task` for how to add a task).
"""
from .backbone import SearchableShuffleNetBackbone
from .hooks import ArchSamplerHook, TrainProgressHook
from .runner import TrustedResumeRunner
from .split import HeldOutSplit
from .task import Task, register_task, task_of

__all__ = ["ArchSamplerHook", "HeldOutSplit", "SearchableShuffleNetBackbone", "Task", "TrainProgressHook",
           "TrustedResumeRunner", "register_task", "task_of"]
