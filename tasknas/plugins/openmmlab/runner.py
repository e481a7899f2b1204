"""TrustedResumeRunner: the stock mmengine Runner, its checkpoints plain data that load with ``weights_only=True``.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls ``torch.load`` without the
argument. The Runner's own checkpoints carry numpy arrays and scalars and ``HistoryBuffer`` objects in ``meta``
/ ``message_hub``; unpickling a ``HistoryBuffer`` calls ``builtins.getattr`` on it, and an allow-list holding
``getattr`` leaves no safety at all. So this runner never reads a checkpoint with the unsafe loader:

* it **writes** its checkpoints as plain data: the message hub's ``HistoryBuffer`` values become
  ``{"__history_buffer__": {...lists...}}`` and numpy values become Python numbers and lists, so the file needs
  nothing beyond what ``weights_only=True`` admits;
* it **resumes** with ``weights_only=True`` and turns those values back into ``HistoryBuffer`` objects. A file
  that holds anything else (a checkpoint of the stock Runner, or one carrying pickled code) is refused with one
  line naming the file — whatever ``<work_dir>/last_checkpoint`` points to, and whether it is resumed from the
  work dir or from a config's ``load_from``.

Every other load (``load_from`` weights, ``init_cfg``, supernet weights given to the search) keeps torch's safe
default. ``tasknas train`` uses this runner; with the stock Runner, training without resuming works unchanged.
"""
from __future__ import annotations

import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from .hooks import unwrap

_BUFFER = "__history_buffer__"


def to_plain(value):
    """``value`` with every HistoryBuffer, numpy array and numpy scalar replaced by plain Python data."""
    if isinstance(value, HistoryBuffer):
        logs, counts = value.data
        return {_BUFFER: {"log_history": logs.tolist(), "count_history": counts.tolist(),
                          "max_length": value.max_length}}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((k, to_plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    return value


def from_plain(value):
    """The inverse of :func:`to_plain` for the message hub's HistoryBuffer values."""
    if isinstance(value, dict):
        if set(value) == {_BUFFER}:
            return HistoryBuffer(**value[_BUFFER])
        return type(value)((k, from_plain(v)) for k, v in value.items())
    return value


def _reason(exc: Exception) -> str:
    """The informative line of a refused load: torch's "Unsupported global: ..." where it names one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "Unsupported global" in line or "Unsupported operand" in line:
            return line.split("WeightsUnpickler error:")[-1].strip()
    return lines[0] if lines else type(exc).__name__


def load_plain_checkpoint(filename: str, map_location="cpu") -> dict:
    """A training checkpoint read with ``weights_only=True``; one clear error when it holds anything else."""
    try:
        checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {filename!r} to resume from does not exist") from None
    except Exception as exc:  # noqa: BLE001  (UnpicklingError, RuntimeError, EOFError, zip errors, ...)
        raise ValueError(f"refused to resume from {filename!r}: it does not load as plain data with "
                         f"weights_only=True ({_reason(exc)}); tasknas resumes only the checkpoints `tasknas train` "
                         "writes, never a file that could run code") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"refused to resume from {filename!r}: it holds no training checkpoint (a dict with a "
                         "'state_dict')")
    if "message_hub" in checkpoint:
        checkpoint["message_hub"] = from_plain(checkpoint["message_hub"])
    return checkpoint


@RUNNERS.register_module()
class TrustedResumeRunner(Runner):
    _resuming: str | None = None

    def call_hook(self, fn_name: str, **kwargs) -> None:
        super().call_hook(fn_name, **kwargs)
        if fn_name == "before_save_checkpoint":  # the last step before mmengine writes the file
            checkpoint = kwargs["checkpoint"]
            for key in ("meta", "message_hub"):
                if key in checkpoint:
                    checkpoint[key] = to_plain(checkpoint[key])

    def resume(self, filename: str, resume_optimizer: bool = True, resume_param_scheduler: bool = True,
               map_location="default") -> None:
        self._resuming = filename
        try:
            return super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        finally:
            self._resuming = None

    def load_checkpoint(self, filename: str, map_location="cpu", strict: bool = False,
                        revise_keys: list = [(r"^module.", "")]):  # noqa: B006  (the signature of Runner's)
        if filename != self._resuming:  # load_from / init weights: torch's safe default, refusals in one line
            try:
                return super().load_checkpoint(filename, map_location, strict, revise_keys)
            except pickle.UnpicklingError as exc:
                raise ValueError(f"refused to load weights from {filename!r}: it does not load as plain data with "
                                 f"weights_only=True ({_reason(exc)})") from None
        checkpoint = load_plain_checkpoint(filename, "cpu" if map_location == "default" else map_location)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(unwrap(self.model), checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f"Resumed from checkpoint {filename}")
        return checkpoint
