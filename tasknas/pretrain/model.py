"""The pre-training network: a core supernet with a linear classifier, and its transfer checkpoint.

DetNAS step 1 (Chen et al., "DetNAS: Backbone Search for Object Detection", NeurIPS 2019) pre-trains the
supernet on ImageNet classification with the SPOS head — a 1×1 conv-BN-ReLU, global average pooling and a
linear classifier on the last stage — and fine-tunes only the backbone part on detection.

:class:`SupernetClassifier` holds the space under ``backbone.body`` and the head under ``head``, so its
state-dict keys are those of the searchable backbone inside a detector (``backbone.body.<...>``). The
checkpoint :func:`save_pretrained` writes (plain tensors + plain metadata, loaded with
``torch.load(weights_only=True)``) therefore loads into the detection / segmentation supernet with the
stock mmengine mechanism, either

* ``model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='<out>/supernet.pth',
  prefix='backbone.')))`` — the backbone alone (keys ``body.<...>``; the ``head.*`` keys are skipped), or
* ``load_from = '<out>/supernet.pth'`` — the whole detector, the classifier's ``head.*`` keys reported as
  unexpected and the neck/head keys as missing, as for any ImageNet checkpoint.

:func:`check_pretrained` reads the file's space and raises one error naming it when it is not the space
the backbone builds; :func:`check_init_cfg` does the same for a backbone's ``init_cfg``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from ..core import create_space
from ..core.spaces import shufflenet_small_images  # noqa: F401  (registers detnas_shufflenet_fmnist)
from ..core.subnet import save_weights

FORMAT = "tasknas-pretrain-v1"


class SupernetClassifier(nn.Module):
    """``backbone.body``: the supernet of ``space`` (features only); ``head``: 1×1 conv-BN-ReLU to
    ``last_channels``, global average pooling, linear classifier to ``num_classes``."""

    def __init__(self, space: str, num_classes: int, in_channels: int = 3, last_channels: int = 256):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        self.space_name = space
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.last_channels = last_channels
        self.backbone = nn.Module()
        self.backbone.body = create_space(space, in_channels=in_channels)
        width = self.backbone.body.out_channels[-1]
        self.head = nn.Sequential(nn.Conv2d(width, last_channels, 1, bias=False), nn.BatchNorm2d(last_channels),
                                  nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(last_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.body.forward_features(x)[-1])

    def description(self) -> dict:
        """Plain data that rebuilds this network (:func:`build_from_description`)."""
        return {"space": self.space_name, "num_classes": self.num_classes, "in_channels": self.in_channels,
                "last_channels": self.last_channels}


def build_from_description(description: Mapping) -> SupernetClassifier:
    return SupernetClassifier(description["space"], int(description["num_classes"]), int(description["in_channels"]),
                              int(description["last_channels"]))


def save_pretrained(path: str | os.PathLike, model: SupernetClassifier, meta: Mapping | None = None) -> None:
    """Write the transfer checkpoint: ``{"state_dict", "format", "space", "network", "meta"}``, atomically."""
    save_weights(path, model, format=FORMAT, space=model.space_name, network=model.description(),
                 meta=dict(meta or {}))


def read_pretrained(path: str | os.PathLike) -> dict:
    """The payload of a file written by :func:`save_pretrained` (``weights_only=True``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pre-trained checkpoint {path!r} does not exist")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "space" not in payload:
        raise ValueError(f"{path} is not a tasknas pre-training checkpoint (expected format {FORMAT!r} with a "
                         "'space' entry; write one with `tasknas pretrain`)")
    return payload


def check_payload(payload: Mapping, path: str, space: str, in_channels: int | None = None) -> None:
    """Check a loaded checkpoint (``path`` names it in the error) against the backbone's space and channels."""
    if payload["space"] != space:
        raise ValueError(f"pre-trained checkpoint {path!r} holds the supernet of space {payload['space']!r}, but the "
                         f"backbone builds space {space!r}; pre-train that space (model.space={space!r}) or set the "
                         f"backbone's space to {payload['space']!r}")
    channels = int(payload["network"]["in_channels"])
    if in_channels is not None and channels != in_channels:
        raise ValueError(f"pre-trained checkpoint {path!r} was trained on {channels}-channel images, but the backbone "
                         f"takes {in_channels}; pre-train with data.channels={in_channels}")


def check_pretrained(path: str | os.PathLike, space: str, in_channels: int | None = None) -> dict:
    """Read the checkpoint and check it was pre-trained on ``space`` (and with ``in_channels`` input channels,
    if given); the error names both spaces (channel counts)."""
    payload = read_pretrained(path)
    check_payload(payload, os.fspath(path), space, in_channels)
    return payload


def check_init_cfg(init_cfg: object, space: str, in_channels: int = 3) -> None:
    """For a backbone's ``init_cfg``: when it is ``Pretrained`` from a ``tasknas pretrain`` checkpoint, check the
    checkpoint's space and input channels (:func:`check_pretrained`). Other checkpoints (another format, a URL,
    a missing file) are left to mmengine."""
    for cfg in init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]:
        if not isinstance(cfg, Mapping) or cfg.get("type") != "Pretrained" or "checkpoint" not in cfg:
            continue
        path = os.fspath(cfg["checkpoint"])
        if not os.path.isfile(path):
            continue
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001  (not a plain-tensor file: not ours)
            continue
        if isinstance(payload, dict) and payload.get("format") == FORMAT:
            check_payload(payload, path, space, in_channels)


def load_supernet(path: str | os.PathLike) -> tuple[SupernetClassifier, dict]:
    """The :class:`SupernetClassifier` of a transfer checkpoint, every tensor loaded (strict)."""
    payload = read_pretrained(path)
    model = build_from_description(payload["network"])
    model.load_state_dict(payload["state_dict"], strict=True)
    return model, payload
