# RetinaNet with the searchable DetNAS large (1.3G-class, 40 blocks) ShuffleNetV2 supernet, on COCO.
_base_ = './retinanet_detnas-small_fpn_1x_coco.py'

model = dict(
    backbone=dict(space='detnas_shufflenet_large'),
    neck=dict(in_channels=[96, 240, 480, 960]))
