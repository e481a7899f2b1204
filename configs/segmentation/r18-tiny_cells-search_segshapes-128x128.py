# Decode-head search on the generated shapes set: decoder cells after Nekrasov et al. (CVPR 2019; keys head.*)
# fusing C2-C5 of a fixed narrow ResNet-18 (widths 16-128, strides 4-32). CPU-sized.
_base_ = './_base_/segshapes_128x128.py'

model = dict(
    type='EncoderDecoder',
    data_preprocessor={{_base_.data_preprocessor}},
    pretrained=None,
    backbone=dict(type='ResNetV1c', depth=18, stem_channels=16, base_channels=16, num_stages=4,
                  out_indices=(0, 1, 2, 3), norm_cfg={{_base_.norm_cfg}}, norm_eval=False, style='pytorch'),
    decode_head=dict(
        type='SearchableCellHead',
        in_channels=[16, 32, 64, 128], in_index=[0, 1, 2, 3], channels=32,
        num_cells=3, cell_index=0,  # the cells run at C2's resolution (stride 4)
        dropout_ratio=0.1, num_classes=5, norm_cfg={{_base_.norm_cfg}}, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
