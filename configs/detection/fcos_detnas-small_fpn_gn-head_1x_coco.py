# FCOS with the searchable DetNAS small (300M-class) ShuffleNetV2 supernet, on COCO.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['tasknas.plugins.detection'], allow_failed_imports=False)

model = dict(
    # the base normalises for a caffe-style ResNet; this backbone is trained with the usual RGB statistics
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='SearchableShuffleNetBackbone',
        space='detnas_shufflenet_small',
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(in_channels=[64, 160, 320, 640]))  # FPN starts at C3 (start_level=1)

custom_hooks = [dict(type='ArchSamplerHook', sampling='uniform', seed=0, input_size=(800, 1333))]

sync_bn = 'torch'
find_unused_parameters = True
