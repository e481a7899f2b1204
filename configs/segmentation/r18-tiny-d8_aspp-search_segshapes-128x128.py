# Decode-head search on the generated shapes set: a searchable ASPP / DeepLabV3+ head (keys head.*) on a fixed
# narrow dilated ResNet-18 (widths 16-128, output stride 8, as mmseg's DeepLabV3 encoders). CPU-sized.
_base_ = './_base_/segshapes_128x128.py'

model = dict(
    type='EncoderDecoder',
    data_preprocessor={{_base_.data_preprocessor}},
    pretrained=None,
    backbone=dict(type='ResNetV1c', depth=18, stem_channels=16, base_channels=16, num_stages=4,
                  out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True,
                  norm_cfg={{_base_.norm_cfg}}, norm_eval=False, style='pytorch'),
    decode_head=dict(
        type='SearchableASPPHead',
        in_channels=128, in_index=3, channels=64,  # ASPP on C5 at stride 8 (16x16 at 128 px)
        dilations=(1, 3, 6, 9), num_branches=4, branch_widths=(32, 64), image_pool_widths=(32, 64),
        low_level_index=(0,), low_level_channels=(16,), low_level_widths=(16, 32),  # DeepLabV3+ decoder on C2
        dropout_ratio=0.1, num_classes=5, norm_cfg={{_base_.norm_cfg}}, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
