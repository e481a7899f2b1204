# Joint search: the DetNAS small supernet (keys backbone.*) under a searchable ASPP / DeepLabV3+ head (keys
# head.*: per-branch rate, kind and width, image pool, low-level decoder on C2 or C3) in one arch.
# Rates are those of mmseg's ASPPHead scaled to stride 32 (x 1/4) and between. BN here; see the dataset base.
_base_ = 'mmseg::_base_/models/deeplabv3_r50-d8.py'
custom_imports = dict(imports=['tasknas.plugins.segmentation'], allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='SearchableShuffleNetBackbone',
        space='detnas_shufflenet_small',
        out_indices=(0, 1, 2, 3),
        key_prefix='backbone.',
        init_cfg=None),
    decode_head=dict(
        _delete_=True,
        type='SearchableASPPHead',
        in_channels=640, in_index=3, channels=256, num_branches=4, dilations=(1, 2, 3, 6, 9),
        low_level_index=(0, 1), low_level_channels=(64, 160), low_level_widths=(24, 48),
        dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(in_channels=320, in_index=2, norm_cfg=norm_cfg))
