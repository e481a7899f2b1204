"""TrustedResumeRunner: the stock mmengine Runner, able to resume its own training checkpoints on torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls ``torch.load`` without
the argument. The Runner's own checkpoints carry numpy scalars and ``HistoryBuffer`` objects in ``meta`` /
``message_hub``, which that refuses; an allow-list wide enough for them leaves no safety. So this runner
reads the file named for *resuming* — a checkpoint the same training wrote — with ``weights_only=False``,
and only that file: every other load (``load_from`` weights, ``init_cfg``, supernet weights given to the
search) keeps torch's safe default. ``tasknas train`` uses it; with the stock Runner, training without
resuming works unchanged.
"""
from __future__ import annotations

import torch
from mmdet.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from .hooks import unwrap


@RUNNERS.register_module()
class TrustedResumeRunner(Runner):
    _resuming: str | None = None

    def resume(self, filename: str, resume_optimizer: bool = True, resume_param_scheduler: bool = True,
               map_location="default") -> None:
        self._resuming = filename
        try:
            return super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        finally:
            self._resuming = None

    def load_checkpoint(self, filename: str, map_location="cpu", strict: bool = False,
                        revise_keys: list = [(r"^module.", "")]):  # noqa: B006  (the signature of Runner's)
        if filename != self._resuming:
            return super().load_checkpoint(filename, map_location, strict, revise_keys)
        # Resuming this training's own checkpoint: the one explicit unsafe load (see the module docstring).
        checkpoint = torch.load(filename, map_location=map_location, weights_only=False)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(unwrap(self.model), checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f"Resumed from checkpoint {filename}")
        return checkpoint
