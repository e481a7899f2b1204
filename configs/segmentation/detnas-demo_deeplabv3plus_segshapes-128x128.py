# Backbone search on the generated shapes set: the DetNAS demo backbone space (10 blocks) under mmseg's stock
# DeepLabV3+ head (DepthwiseSeparableASPPHead on C5, decoder on C2). CPU-sized.
_base_ = './_base_/segshapes_128x128.py'

model = dict(
    type='EncoderDecoder',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='SearchableShuffleNetBackbone', space='detnas_shufflenet_demo', out_indices=(0, 1, 2, 3),
                  init_cfg=None),  # C2-C5: 32/64/128/256 channels, strides 4-32
    decode_head=dict(
        type='DepthwiseSeparableASPPHead',
        in_channels=256, in_index=3, channels=64, dilations=(1, 2, 3),
        c1_in_channels=32, c1_channels=16,
        dropout_ratio=0.1, num_classes=5, norm_cfg={{_base_.norm_cfg}}, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
