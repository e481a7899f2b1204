# Decoder search on a fixed encoder after Nekrasov et al. (CVPR 2019): MobileNetV2 (outputs of its layers 2, 3,
# 5 and 7: 24/32/96/320 channels at strides 4-32) and a decode head of 3 searched merge cells at stride 4
# (keys head.*). For an ImageNet start set model.backbone.init_cfg=dict(type='Pretrained', checkpoint=<local
# file>) (nothing is downloaded). BN here; see the dataset base for SyncBN.
_base_ = 'mmseg::_base_/models/deeplabv3_r50-d8.py'
custom_imports = dict(imports=['tasknas.plugins.segmentation'], allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        widen_factor=1.0,
        strides=(1, 2, 2, 2, 1, 2, 1),
        dilations=(1, 1, 1, 1, 1, 1, 1),
        out_indices=(1, 2, 4, 6),
        norm_cfg=norm_cfg),
    decode_head=dict(
        _delete_=True,
        type='SearchableCellHead',
        in_channels=[24, 32, 96, 320], in_index=[0, 1, 2, 3], channels=64, num_cells=3, cell_index=0,
        dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(in_channels=96, in_index=2, norm_cfg=norm_cfg))
