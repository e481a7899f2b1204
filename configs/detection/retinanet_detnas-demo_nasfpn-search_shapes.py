# CPU-sized joint search on the generated shapes set (demo `joint` and tests): the demo DetNAS backbone
# space (keys `backbone.*`) and a NAS-FPN neck (keys `neck.*`) in one arch.
_base_ = './retinanet_detnas-small_fpn_shapes.py'

model = dict(
    data_preprocessor=dict(pad_size_divisor=128),
    backbone=dict(space='detnas_shufflenet_demo', out_indices=(1, 2, 3), key_prefix='backbone.'),
    neck=dict(
        _delete_=True,
        type='SearchableNASFPN',
        in_channels=[64, 128, 256],  # C3-C5 of the demo space
        out_channels=64,
        num_outs=5,
        stack_times=2,
        norm_cfg=dict(type='BN', requires_grad=True)))
