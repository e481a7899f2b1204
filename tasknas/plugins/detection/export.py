"""``tasknas export CONFIG --checkpoint SUPERNET.pth --arch ARCH.json --work-dir OUT``: the searched subnet.

OUT gets:

* ``arch.json`` — the arch, validated against the config's space (published DetNAS archs load too:
  ``configs/detection/detnas_fpn_300m.arch.json``);
* ``subnet.pth`` — the fixed detector's tensors (``{"state_dict", "meta"}``, plain data: stock mmengine and
  ``torch.load(weights_only=True)`` read it). Before fixing, the BN statistics of the arch are recalibrated
  on ``calib_images`` training images, as the search scored it;
* ``<config>_subnet.py`` — a self-contained config (the original, merged) whose backbone is the fixed
  subnet (``arch=...``), without path sampling, ``load_from`` the inherited weights: it trains and tests
  with the stock Runner (set ``load_from = None`` to train it from scratch);
* ``backbone.onnx`` — the fixed backbone (C2–C5 outputs) at the config's input size, checked against
  PyTorch under onnxruntime; ``export.json`` records the largest difference.
"""
from __future__ import annotations

import copy
import json
import os
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
    atomic_write_text(config_path, subnet_config(cfg, chosen.as_dict(), work / "subnet.pth").pretty_text + "\n")
    report = {"arch": str(work / "arch.json"), "weights": str(work / "subnet.pth"), "config": str(config_path)}
    if onnx:
        size = tuple(input_size) if input_size else input_size_of(cfg)
        path, diff = export_backbone_onnx(subnet.backbone, size, work / "backbone.onnx")
        report["onnx"], report["onnx_max_abs_diff"] = path, diff
    atomic_write_text(work / "export.json", json.dumps(report, indent=1) + "\n")
    return report


def subnet_config(cfg: Config, arch: dict, weights: Path) -> Config:
    """A copy of ``cfg`` that builds the fixed subnet of ``arch`` and starts from ``weights``."""
    out = copy.deepcopy(cfg)
    backbone = out.model.backbone
    if backbone.get("type") != "SearchableShuffleNetBackbone":
        raise ValueError(f"export supports SearchableShuffleNetBackbone, the config has {backbone.get('type')!r}")
    backbone.arch = dict(arch)
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


def export_backbone_onnx(backbone: torch.nn.Module, size: tuple[int, int], path: Path) -> tuple[str, float]:
    """Write the backbone as ONNX and check it against PyTorch under onnxruntime; returns (path, max diff)."""
    import onnxruntime

    module = _Features(backbone).eval()
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = [t.numpy() for t in module(x)]
    names = [f"c{i + 2}" for i in range(len(reference))]

    def write(tmp: str) -> None:
        torch.onnx.export(module, (x,), tmp, dynamo=False, input_names=["image"], output_names=names,
                          dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in names}})

    atomic_write(path, write)
    module.eval()  # the exporter restores the wrapper's mode, which reaches the backbone
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(names, {"image": x.numpy()})
    worst = max(float(np.abs(o - r).max() / max(1.0, float(np.abs(r).max())))
                for o, r in zip(outputs, reference))
    if worst > ONNX_TOLERANCE:
        raise RuntimeError(f"ONNX backbone differs from PyTorch by {worst:.3g} (relative), above {ONNX_TOLERANCE}")
    return str(path), worst
