"""Configs, supernet weights, models and processes: what every driver of the layer starts with.

* :func:`load_config` — a config file (or a copy of a Config object) with ``--cfg-options`` merged and its
  default scope set, so registries resolve types the way the host's own tools do;
* :func:`read_supernet_weights` / :func:`build_model` — the config's model, optionally with the plain-tensor
  weights that ``tasknas train`` writes, read with ``weights_only=True`` (no pickled code can run);
* :func:`init_distributed_from_env` — torchrun's process group (NCCL on GPUs, gloo on CPU, where mmengine's
  own launcher would call ``torch.cuda.set_device`` and fail);
* :func:`quiet` — silence what evaluators print once per candidate.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, init_default_scope


def load_config(config: str | os.PathLike | Config, options: dict | None = None) -> Config:
    """The config at ``config`` (or a copy of a Config object) with ``options`` merged in."""
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)  # Config.copy() is shallow: never mutate the caller's config
    else:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config {str(path)!r} does not exist")
        try:
            cfg = Config.fromfile(str(path))
        except (SyntaxError, ValueError, TypeError, KeyError, NameError, ImportError, FileNotFoundError) as exc:
            raise ValueError(f"config {str(path)!r} cannot be read: {type(exc).__name__}: {exc}") from None
    if options:
        cfg.merge_from_dict(options)
    from .task import task_of

    init_default_scope(task_of(cfg).scope)
    return cfg


def config_record(config: str | os.PathLike | Config) -> dict:
    """How a config is recorded beside results: its path (when it has one) and its full text (``Config.dump``)."""
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    path = str(config) if not isinstance(config, Config) else (str(cfg.filename) if cfg.filename else None)
    return {"path": path, "text": cfg.dump()}


def read_supernet_weights(checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Plain tensors from ``checkpoint`` (``weights_only=True``): a state_dict, or ``{"state_dict": ...}``."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (torch raises UnpicklingError, RuntimeError, EOFError, ...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"checkpoint {str(path)!r} cannot be read as plain tensors (weights_only=True): "
                         f"{first}. Pass the supernet.pth that `tasknas train` writes, not a Runner training "
                         "checkpoint (iter_*.pth / epoch_*.pth)") from None
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {str(path)!r} holds no state_dict of tensors")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"checkpoint {str(path)!r} holds {len(bad)} non-finite tensors (e.g. {bad[0]!r}): the "
                         "supernet diverged; retrain it (lower learning rate, gradient clipping)")
    return state


def build_model(cfg: Config, checkpoint: str | os.PathLike | None = None,
                device: str | torch.device | None = None) -> torch.nn.Module:
    """The config's model, optionally with the supernet weights of ``checkpoint`` (all keys must match)."""
    from .task import task_of

    init_default_scope(task_of(cfg).scope)
    try:
        model = MODELS.build(cfg.model)
    except KeyError as exc:  # the registry's error for an unknown type
        reason = exc.args[0] if exc.args else exc
        raise ValueError(f"config {cfg.filename or '(in memory)'}: cannot build the model: {reason}") from None
    if checkpoint is not None:
        state = read_supernet_weights(checkpoint)
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            raise ValueError(
                f"checkpoint {str(checkpoint)!r} does not fit this config's supernet "
                f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrongly shaped tensors; "
                f"e.g. {(missing or unexpected or wrong)[:3]}): was it trained with another space or config?")
        model.load_state_dict(state)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device)


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


def rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


@contextlib.contextmanager
def quiet():
    """Silence what evaluators print (pycocotools) and mmengine's INFO log lines (one set per candidate otherwise)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
