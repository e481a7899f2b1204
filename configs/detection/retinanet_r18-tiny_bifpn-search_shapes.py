# CPU-sized BiFPN search on the generated shapes set (demo `bifpn` and tests): a fixed narrow ResNet-18
# (16 base channels) and a searchable BiFPN neck (64 channels, up to 3 layers).
_base_ = './retinanet_detnas-small_fpn_shapes.py'

model = dict(
    data_preprocessor=dict(pad_size_divisor=128),
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        base_channels=16,
        out_indices=(1, 2, 3),  # C3-C5: 32, 64, 128 channels
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    neck=dict(
        _delete_=True,
        type='SearchableBiFPN',
        in_channels=[32, 64, 128],
        out_channels=64,
        num_outs=5,
        num_layers=3))

custom_hooks = [dict(type='ArchSamplerHook', sampling='uniform', seed=0, input_size=(128, 128))]
