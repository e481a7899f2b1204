"""``tasknas export CONFIG --checkpoint SUPERNET.pth --arch ARCH.json --work-dir OUT``: the searched subnet.

OUT gets:

* ``arch.json`` — the arch, validated against the config's space (published archs load too:
  ``configs/detection/detnas_fpn_300m.arch.json``, ``nasfpn_published.arch.json``, ``bifpn_d0.arch.json``);
* ``subnet.pth`` — the fixed detector's tensors (``{"state_dict", "meta"}``, plain data: stock mmengine and
  ``torch.load(weights_only=True)`` read it). Before fixing, the BN statistics of the arch are recalibrated
  on ``calib_images`` training images, as the search scored it;
* ``<config>_subnet.py`` — a self-contained config (the original, merged) whose searchable parts — backbone,
  neck, or both — are the fixed subnet (``arch=`` with that part's keys), without path sampling,
  ``load_from`` the inherited weights: it trains and tests with the stock Runner (set ``load_from = None``
  to train it from scratch);
* ``backbone.onnx`` (a backbone search: C2–C5 outputs) or ``features.onnx`` (a search that covers the neck:
  backbone + neck, the pyramid the head reads) at the config's input size, checked against PyTorch under
  onnxruntime; ``export.json`` records the largest difference.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from ...core import fix, load_arch, recalibrate_bn, set_arch, space_of
from ...core.state import atomic_write, atomic_write_text
from ...core.subnet import save_weights
from .evaluation import build_detector, calibration_batches, calibration_forward, input_size_of, load_config

ONNX_TOLERANCE = 1e-4  # largest |onnxruntime - PyTorch| relative to the output's scale


def export(config: str | os.PathLike | Config, checkpoint: str | os.PathLike, arch: str | os.PathLike,
           work_dir: str | os.PathLike, *, options: dict | None = None, calib_images: int = 64,
           input_size: tuple[int, int] | None = None, onnx: bool = True, seed: int = 0) -> dict:
    cfg = load_config(config, options)
    work = Path(work_dir)
    model = build_detector(cfg, checkpoint, "cpu")
    chosen = load_arch(arch, space_of(model))
    set_arch(model, chosen)
    if calib_images > 0:
        batches = calibration_batches(cfg, calib_images, seed=seed)
        recalibrate_bn(model, batches, forward=calibration_forward)
    subnet = fix(model, chosen).eval()
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work / "arch.json", chosen.to_json() + "\n")
    name = Path(str(cfg.filename)).stem if cfg.filename else "detector"
    meta = {"arch": chosen.as_dict(), "source_config": str(cfg.filename), "checkpoint": str(checkpoint),
            "calib_images": calib_images}
    save_weights(work / "subnet.pth", subnet, meta=meta)
    config_path = work / f"{name}_subnet.py"
    parts = searched_parts(model)
    atomic_write_text(config_path, subnet_config(cfg, chosen.as_dict(), work / "subnet.pth", parts).pretty_text + "\n")
    report = {"arch": str(work / "arch.json"), "weights": str(work / "subnet.pth"), "config": str(config_path)}
    if onnx:
        size = tuple(input_size) if input_size else input_size_of(cfg)
        if "neck" in parts:
            path, diff = export_features_onnx(torch.nn.Sequential(subnet.backbone, subnet.neck), size,
                                              work / "features.onnx", "p")
        else:
            path, diff = export_features_onnx(subnet.backbone, size, work / "backbone.onnx", "c")
        report["onnx"], report["onnx_max_abs_diff"] = path, diff
    atomic_write_text(work / "export.json", json.dumps(report, indent=1) + "\n")
    return report


SEARCHABLE = {"backbone": ("SearchableShuffleNetBackbone",), "neck": ("SearchableNASFPN", "SearchableBiFPN")}


def searched_parts(model: torch.nn.Module) -> dict[str, list[str]]:
    """``{part: its arch keys}`` for the detector's parts (backbone, neck) that hold choices."""
    parts = {}
    for name, child in model.named_children():
        keys = sorted(space_of(child))
        if keys:
            if name not in SEARCHABLE:
                raise ValueError(f"export supports choices in {sorted(SEARCHABLE)}; the detector's {name!r} has some")
            parts[name] = keys
    return parts


def subnet_config(cfg: Config, arch: dict, weights: Path, parts: dict[str, list[str]]) -> Config:
    """A copy of ``cfg`` whose searched ``parts`` build the fixed subnet of ``arch`` and start from ``weights``."""
    out = copy.deepcopy(cfg)
    for part, keys in parts.items():
        section = out.model[part]
        if section.get("type") not in SEARCHABLE[part]:
            raise ValueError(f"export supports {part} types {list(SEARCHABLE[part])}, the config has "
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


class _Features(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return tuple(self.backbone(x))


def export_features_onnx(module: torch.nn.Module, size: tuple[int, int], path: Path, prefix: str) -> tuple[str, float]:
    """Write ``module`` (image → feature maps) as ONNX and check it against PyTorch under onnxruntime;
    returns (path, max diff relative to each output's scale). Outputs are named ``c2..c5`` / ``p3..p7``."""
    import onnxruntime

    module = _Features(module).eval()
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = [t.numpy() for t in module(x)]
    first = 2 if prefix == "c" else 3
    names = [f"{prefix}{i + first}" for i in range(len(reference))]

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
