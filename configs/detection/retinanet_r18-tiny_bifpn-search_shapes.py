# CPU-sized BiFPN search on the generated shapes set (demo `bifpn` and tests): a fixed narrow ResNet-18
# and a searchable BiFPN neck (64 channels, up to 3 layers).
_base_ = './retinanet_r18-tiny_nasfpn-search_shapes.py'

model = dict(
    neck=dict(
        _delete_=True,
        type='SearchableBiFPN',
        in_channels=[32, 64, 128],
        out_channels=64,
        num_outs=5,
        num_layers=3))
