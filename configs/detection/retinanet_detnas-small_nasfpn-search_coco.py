# Joint search: the DetNAS small backbone and a NAS-FPN neck in one arch. Backbone keys read
# `backbone.stage*.block*`, neck keys `neck.*`; `tasknas search` / `export` handle both parts at once.
_base_ = './retinanet_detnas-small_fpn_1x_coco.py'

model = dict(
    data_preprocessor=dict(pad_size_divisor=128),
    backbone=dict(out_indices=(1, 2, 3), key_prefix='backbone.'),
    neck=dict(
        _delete_=True,
        type='SearchableNASFPN',
        in_channels=[160, 320, 640],  # C3-C5
        out_channels=256,
        num_outs=5,
        stack_times=7,
        norm_cfg=dict(type='BN', requires_grad=True)))

custom_hooks = [dict(type='ArchSamplerHook', sampling='flops', seed=0, input_size=(800, 1333))]
