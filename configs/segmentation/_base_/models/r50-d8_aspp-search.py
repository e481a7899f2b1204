# Decode-head search on mmseg's DeepLabV3 encoder (ResNet-50-V1c, output stride 8): a searchable ASPP /
# DeepLabV3+ head (keys head.*) whose archs include mmseg's ASPPHead (rates 1, 12, 24, 36, width 512, image
# pool on, no decoder: tasknas.plugins.segmentation.mmseg_aspp_arch()). The encoder is fixed; for an
# ImageNet start set model.backbone.init_cfg=dict(type='Pretrained', checkpoint=<local file>) (nothing is
# downloaded). BN here; see the dataset base for SyncBN.
_base_ = 'mmseg::_base_/models/deeplabv3_r50-d8.py'
custom_imports = dict(imports=['tasknas.plugins.segmentation'], allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    pretrained=None,
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(
        _delete_=True,
        type='SearchableASPPHead',
        in_channels=2048, in_index=3, channels=512, num_branches=4, dilations=(1, 6, 12, 18, 24, 36),
        branch_widths=(256, 512), image_pool_widths=(256, 512),
        low_level_index=(0,), low_level_channels=(256,), low_level_widths=(48,),  # DeepLabV3+ decoder on C2
        dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(norm_cfg=norm_cfg))
