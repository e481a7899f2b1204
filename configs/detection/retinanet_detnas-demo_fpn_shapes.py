# The demo's detector: the shapes config with the CPU demo space (10 blocks) as the searchable backbone.
_base_ = './retinanet_detnas-small_fpn_shapes.py'

model = dict(
    backbone=dict(space='detnas_shufflenet_demo'),
    neck=dict(in_channels=[32, 64, 128, 256]))
