"""The pre-training checkpoint in the detection and segmentation supernets, with the stock mmengine mechanisms:
``init_cfg=dict(type='Pretrained', prefix='backbone.')`` (the project's detection config) and ``load_from``
(mmengine's ``load_checkpoint``, what the Runner calls). Every backbone tensor must arrive."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint

from tasknas.pretrain.model import SupernetClassifier, check_init_cfg, save_pretrained
from tasknas.pretrain.trainer import SUPERNET, pretrain
from tests.pretrain.tiny import tiny_config

ROOT = Path(__file__).resolve().parents[2]
DET_CONFIG = ROOT / "configs" / "detection" / "retinanet_detnas-small_fpn_shapes_pretrained.py"


@pytest.fixture(autouse=True, scope="module")
def quiet_mmengine():
    """mmengine logs one INFO entry per initialised tensor (thousands for a supernet): warnings only."""
    from mmengine.logging import MMLogger

    MMLogger.get_instance("tasknas-pretrain-tests", log_level="WARNING")
    yield


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    """``tasknas pretrain`` of the 20-block space for one step on 32x32 RGB shapes."""
    out = tmp_path_factory.mktemp("small")
    cfg = tiny_config(model={"space": "detnas_shufflenet_small", "last_channels": 32},
                      data={"generated_images": 40, "held_out": 8, "batch_size": 32, "image_size": 32,
                            "channels": 3, "crop_padding": None, "flip": False},
                      train={"epochs": 1})
    pretrain(cfg, out)
    return out / SUPERNET


def _backbone_tensors(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["state_dict"]
    assert any(k.startswith("head.") for k in state)  # the classifier is in the file ...
    return {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}


def _assert_every_tensor_arrived(backbone: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = backbone.state_dict()
    assert sorted(state) == sorted(expected)  # ... and nothing but the classifier is left over
    differ = [k for k, v in state.items() if not torch.equal(v, expected[k])]
    assert differ == []


def _detector(checkpoint: Path, **backbone):
    from mmdet.registry import MODELS

    import tasknas.plugins.detection  # noqa: F401

    init_default_scope("mmdet")
    cfg = Config.fromfile(str(DET_CONFIG))
    cfg.model.backbone.init_cfg.checkpoint = str(checkpoint)
    cfg.model.backbone.update(backbone)
    return MODELS.build(cfg.model)


def test_detection_config_loads_every_backbone_tensor_with_init_cfg(small_checkpoint):
    detector = _detector(small_checkpoint)
    expected = _backbone_tensors(small_checkpoint)
    assert not all(torch.equal(v, expected[k]) for k, v in detector.backbone.state_dict().items())
    detector.init_weights()
    _assert_every_tensor_arrived(detector.backbone, expected)


def test_load_from_loads_every_backbone_tensor_into_the_detector(small_checkpoint):
    detector = _detector(small_checkpoint, init_cfg=None)
    load_checkpoint(detector, str(small_checkpoint), strict=False, revise_keys=[(r"^module\.", "")])
    _assert_every_tensor_arrived(detector.backbone, _backbone_tensors(small_checkpoint))


def test_segmentation_supernet_loads_every_backbone_tensor_with_init_cfg(small_checkpoint):
    from mmseg.registry import MODELS

    import tasknas.plugins.openmmlab  # noqa: F401

    init_default_scope("mmseg")
    model = MODELS.build(dict(
        type="EncoderDecoder",
        data_preprocessor=dict(type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                               bgr_to_rgb=True, size_divisor=32),
        backbone=dict(type="SearchableShuffleNetBackbone", space="detnas_shufflenet_small",
                      init_cfg=dict(type="Pretrained", checkpoint=str(small_checkpoint), prefix="backbone.")),
        decode_head=dict(type="FCNHead", in_channels=640, in_index=3, channels=16, num_convs=1, num_classes=3,
                         norm_cfg=dict(type="BN", requires_grad=True), align_corners=False,
                         loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(), test_cfg=dict(mode="whole")))
    model.init_weights()
    _assert_every_tensor_arrived(model.backbone, _backbone_tensors(small_checkpoint))


def test_checkpoint_of_another_space_is_refused_naming_the_space(tmp_path, small_checkpoint):
    init_cfg = dict(type="Pretrained", checkpoint=str(small_checkpoint), prefix="backbone.")
    with pytest.raises(ValueError, match="space 'detnas_shufflenet_small', but the backbone builds space "
                                         "'detnas_shufflenet_large'"):
        check_init_cfg(copy.deepcopy(init_cfg), "detnas_shufflenet_large")
    check_init_cfg(init_cfg, "detnas_shufflenet_small")  # the right space passes
    grey = tmp_path / "grey.pth"  # a checkpoint of the right space, pre-trained on 1-channel images
    save_pretrained(grey, SupernetClassifier("detnas_shufflenet_small", 10, in_channels=1, last_channels=16))
    with pytest.raises(ValueError, match="1-channel images, but the backbone takes 3"):
        check_init_cfg(dict(init_cfg, checkpoint=str(grey)), "detnas_shufflenet_small")


def test_detector_with_a_checkpoint_of_another_space_fails_at_init_naming_the_space(small_checkpoint):
    detector = _detector(small_checkpoint, space="detnas_shufflenet_demo")
    with pytest.raises(ValueError, match="holds the supernet of space 'detnas_shufflenet_small'"):
        detector.init_weights()
