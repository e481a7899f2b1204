# Faster R-CNN FPN with the searchable DetNAS small (300M-class) ShuffleNetV2 supernet, on COCO (DetNAS's
# main setting; its published FPN-300M arch is configs/detection/detnas_fpn_300m.arch.json).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['tasknas.plugins.detection'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SearchableShuffleNetBackbone',
        space='detnas_shufflenet_small',
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(in_channels=[64, 160, 320, 640]))  # C2-C5 into FPN (P2-P6)

custom_hooks = [dict(type='ArchSamplerHook', sampling='uniform', seed=0, input_size=(800, 1333))]

sync_bn = 'torch'
find_unused_parameters = True
