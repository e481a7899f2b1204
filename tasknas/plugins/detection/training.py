"""``tasknas train CONFIG``: supernet training with the stock mmengine Runner, single process or torchrun.

A thin wrapper: it loads the config (``--cfg-options`` merged), picks the work dir, and under torchrun
initialises the process group itself — NCCL on GPUs, gloo on CPU, where mmengine's own launcher would call
``torch.cuda.set_device`` and fail — then runs :class:`TrustedResumeRunner` (the stock Runner that can
resume its own checkpoints on torch >= 2.6). ``Runner.from_cfg(cfg).train()`` works on the same configs.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from mmengine.config import Config

from .evaluation import load_config
from .runner import TrustedResumeRunner


def init_distributed_from_env() -> bool:
    """Initialise torch.distributed from torchrun's environment; False when not launched by torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend)
    return True


def train(config: str | os.PathLike | Config, work_dir: str | os.PathLike | None = None, resume: bool = False,
          options: dict | None = None) -> Path:
    """Train the supernet of ``config``; returns the work dir (which ends with ``supernet.pth``)."""
    cfg = load_config(config, options)
    cfg.work_dir = str(work_dir or cfg.get("work_dir") or Path("work_dirs") / Path(str(cfg.filename)).stem)
    cfg.launcher = "pytorch" if init_distributed_from_env() else "none"
    if resume:
        cfg.resume = True
    TrustedResumeRunner.from_cfg(cfg).train()
    return Path(cfg.work_dir)
