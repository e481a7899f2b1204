"""``tasknas export CONFIG --checkpoint SUPERNET.pth --arch ARCH.json --work-dir OUT``: the searched subnet.

OUT gets:

* ``arch.json`` — the arch, validated against the config's space (published archs load too:
  ``configs/detection/detnas_fpn_300m.arch.json``, ``nasfpn_published.arch.json``, ``bifpn_d0.arch.json``);
* ``subnet.pth`` — the fixed model's tensors (``{"state_dict", "meta"}``, plain data: stock mmengine and
  ``torch.load(weights_only=True)`` read it). Before fixing, the BN statistics of the arch are recalibrated
  on exactly the training images the search recalibrated it on: when ``results.json`` of a search lies beside
  the arch file (``best.arch.json``), its recorded settings (seed, number of calibration images) are used,
  and a flag given explicitly overrides them (and says so);
* ``<config>_subnet.py`` — a self-contained config (the original, merged) whose searchable parts (backbone,
  neck, decode head) are the fixed subnet (``arch=`` with that part's keys), without path sampling,
  ``load_from`` the exported weights: it trains and tests with the stock Runner (set ``load_from = None`` to
  train it from scratch);
* ONNX of the part the task exports (detection: ``backbone.onnx``, or ``features.onnx`` — backbone + neck —
  when the neck is searched; segmentation: the whole segmentor's logits) at the config's input size,
  checked against PyTorch under onnxruntime; ``export.json`` records the largest difference.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from ...core import fix, load_arch, recalibrate_bn, set_arch, space_of
from ...core.state import atomic_write, atomic_write_text
from ...core.subnet import save_weights
from .config import build_model, load_config
from .scoring import calibration_batches, calibration_forward
from .task import Task, task_of

ONNX_TOLERANCE = 1e-4  # largest |onnxruntime - PyTorch| relative to the output's scale


DEFAULTS = {"calib_images": 64, "seed": 0}  # when neither a flag nor a search's results.json gives them


def search_settings(arch: str | os.PathLike) -> dict:
    """The settings recorded by the search whose ``results.json`` lies beside ``arch``; {} when there is none."""
    path = Path(arch).with_name("results.json")
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the search settings in {str(path)!r}: {exc}") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{str(path)!r} holds settings of type {type(settings).__name__}, expected an object")
    return settings


def resolve_settings(arch: str | os.PathLike, given: dict, say=print) -> dict:
    """Export's calibration settings: the flags given explicitly (not None) override what the search recorded
    beside ``arch``, which overrides the defaults; every override of a recorded value is said."""
    recorded = search_settings(arch)
    out = {}
    for key, default in DEFAULTS.items():
        value = given.get(key)
        if value is None:
            out[key] = recorded.get(key, default)
        else:
            if key in recorded and recorded[key] != value:
                say(f"[export] {key}={value!r} given; the search scored with {key}={recorded[key]!r}: the exported "
                    "BN statistics are not those the search scored")
            out[key] = value
    return out


def export(config: str | os.PathLike | Config, checkpoint: str | os.PathLike, arch: str | os.PathLike,
           work_dir: str | os.PathLike, *, options: dict | None = None, calib_images: int | None = None,
           input_size: tuple[int, int] | None = None, onnx: bool = True, seed: int | None = None) -> dict:
    """Export the subnet of ``arch``; ``calib_images`` / ``seed`` default to the search's recorded ones."""
    cfg = load_config(config, options)
    task = task_of(cfg)
    settings = resolve_settings(arch, {"calib_images": calib_images, "seed": seed})
    work = Path(work_dir)
    model = build_model(cfg, checkpoint, "cpu")
    chosen = load_arch(arch, space_of(model))
    set_arch(model, chosen)
    if settings["calib_images"] > 0:
        batches = calibration_batches(cfg, settings["calib_images"], seed=settings["seed"])
        recalibrate_bn(model, batches, forward=calibration_forward)
    subnet = fix(model, chosen).eval()
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work / "arch.json", chosen.to_json() + "\n")
    name = Path(str(cfg.filename)).stem if cfg.filename else task.name
    meta = {"arch": chosen.as_dict(), "source_config": str(cfg.filename), "checkpoint": str(checkpoint), **settings}
    save_weights(work / "subnet.pth", subnet, meta=meta)
    config_path = work / f"{name}_subnet.py"
    parts = searched_parts(model, task)
    atomic_write_text(config_path, subnet_config(cfg, chosen.as_dict(), work / "subnet.pth", parts, task).pretty_text
                      + "\n")
    report = {"arch": str(work / "arch.json"), "weights": str(work / "subnet.pth"), "config": str(config_path),
              **settings}
    if onnx:
        size = tuple(input_size) if input_size else task.input_size(cfg)
        module, filename, name = task.onnx_part(subnet, parts)
        report["onnx"], report["onnx_max_abs_diff"] = export_onnx(module, size, work / filename, name)
    atomic_write_text(work / "export.json", json.dumps(report, indent=1) + "\n")
    return report


def searched_parts(model: torch.nn.Module, task: Task) -> dict[str, list[str]]:
    """``{part: its arch keys}`` for the model's parts (backbone, neck, decode_head, ...) that hold choices."""
    parts = {}
    for name, child in model.named_children():
        keys = sorted(space_of(child))
        if keys:
            if name not in task.searchable:
                raise ValueError(f"{task.name} export supports choices in {sorted(task.searchable)}; the model's "
                                 f"{name!r} has some")
            parts[name] = keys
    return parts


def subnet_config(cfg: Config, arch: dict, weights: Path, parts: dict[str, list[str]], task: Task) -> Config:
    """A copy of ``cfg`` whose searched ``parts`` build the fixed subnet of ``arch`` and start from ``weights``."""
    out = copy.deepcopy(cfg)
    for part, keys in parts.items():
        section = out.model[part]
        if section.get("type") not in task.searchable[part]:
            raise ValueError(f"export supports {part} types {list(task.searchable[part])}, the config has "
                             f"{section.get('type')!r}")
        section.arch = {key: arch[key] for key in keys}
    out.custom_hooks = [h for h in out.get("custom_hooks", []) if h.get("type") != "ArchSamplerHook"]
    out.find_unused_parameters = False
    if out.get("model_wrapper_cfg"):
        out.model_wrapper_cfg.find_unused_parameters = False
    out.load_from = str(weights)
    out.resume = False
    out.pop("work_dir", None)
    return out


class _Outputs(torch.nn.Module):
    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        out = self.module(x)
        return tuple(out) if isinstance(out, (list, tuple)) else (out,)


def export_onnx(module: torch.nn.Module, size: tuple[int, int], path: Path,
                name: Callable[[int], str]) -> tuple[str, float]:
    """Write ``module`` (image → one or more tensors; output *i* named ``name(i)``) as ONNX and check it against
    PyTorch under onnxruntime; returns (path, max diff relative to each output's scale)."""
    import onnxruntime

    module = _Outputs(module).eval()
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = [t.numpy() for t in module(x)]
    names = [name(i) for i in range(len(reference))]

    def write(tmp: str) -> None:
        with warnings.catch_warnings():  # feature sizes are static: the tracer's constant-shape warnings are moot
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, (x,), tmp, dynamo=False, input_names=["image"], output_names=names,
                              dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in names}})

    atomic_write(path, write)
    module.eval()  # the exporter restores the wrapper's mode, which reaches the wrapped modules
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(names, {"image": x.numpy()})
    worst = max(float(np.abs(o - r).max() / max(1.0, float(np.abs(r).max())))
                for o, r in zip(outputs, reference))
    if worst > ONNX_TOLERANCE:
        raise RuntimeError(f"ONNX export differs from PyTorch by {worst:.3g} (relative), above {ONNX_TOLERANCE}")
    return str(path), worst
