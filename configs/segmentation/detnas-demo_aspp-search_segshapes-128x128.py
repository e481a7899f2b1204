# Joint search on the generated shapes set (`tasknas demo seg`, the tests): the DetNAS demo backbone space
# (10 blocks, keys backbone.*) and a searchable ASPP / DeepLabV3+ head (keys head.*) in one arch. CPU-sized.
_base_ = './_base_/segshapes_128x128.py'

model = dict(
    type='EncoderDecoder',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='SearchableShuffleNetBackbone', space='detnas_shufflenet_demo', out_indices=(0, 1, 2, 3),
                  key_prefix='backbone.', init_cfg=None),  # C2-C5: 32/64/128/256 channels, strides 4-32
    decode_head=dict(
        type='SearchableASPPHead',
        in_channels=256, in_index=3, channels=64,  # ASPP on C5 (4x4 at 128 px: small rates)
        dilations=(1, 2, 3), num_branches=4, branch_widths=(32, 64), image_pool_widths=(32, 64),
        low_level_index=(0, 1), low_level_channels=(32, 64), low_level_widths=(16, 32),  # DeepLabV3+ decoder
        dropout_ratio=0.1, num_classes=5, norm_cfg={{_base_.norm_cfg}}, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
