"""``tasknas train CONFIG``: supernet training with the stock mmengine Runner, single process or torchrun.

A thin wrapper: it loads the config (``--cfg-options`` merged), picks the work dir, and under torchrun
initialises the process group itself (see :func:`~.config.init_distributed_from_env`), then runs
:class:`~.runner.TrustedResumeRunner` (the stock Runner that can resume its own checkpoints on torch >= 2.6).
``Runner.from_cfg(cfg).train()`` works on the same configs. The task (detection, segmentation) comes from
the config's ``default_scope``.

``resume=True`` resumes the checkpoint named in ``<work_dir>/last_checkpoint`` (never the config's
``load_from``, which mmengine would otherwise resume from); with no checkpoint there yet, training starts
afresh and says so.
"""
from __future__ import annotations

import os
from pathlib import Path

from mmengine.config import Config
from mmengine.runner.checkpoint import find_latest_checkpoint

from .config import init_distributed_from_env, load_config, rank
from .runner import TrustedResumeRunner


def train(config: str | os.PathLike | Config, work_dir: str | os.PathLike | None = None, resume: bool = False,
          options: dict | None = None) -> Path:
    """Train the supernet of ``config``; returns the work dir (which ends with ``supernet.pth``)."""
    cfg = load_config(config, options)
    cfg.work_dir = str(work_dir or cfg.get("work_dir") or Path("work_dirs") / Path(str(cfg.filename)).stem)
    cfg.launcher = "pytorch" if init_distributed_from_env() else "none"
    if resume:
        last = find_latest_checkpoint(cfg.work_dir) if Path(cfg.work_dir).is_dir() else None
        if last is None:
            if rank() == 0:
                print(f"[train] nothing to resume in {cfg.work_dir} (no last_checkpoint yet): training from the start",
                      flush=True)
        else:
            cfg.resume = True
            cfg.load_from = last  # resume exactly this file (mmengine would resume from the config's load_from)
    try:
        runner = TrustedResumeRunner.from_cfg(cfg)
    except KeyError as exc:  # the registries' error for an unknown type
        raise ValueError(f"config {cfg.filename or '(in memory)'}: {exc.args[0] if exc.args else exc}") from None
    runner.train()
    return Path(cfg.work_dir)
