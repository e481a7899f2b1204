# RetinaNet with EfficientNet-B0 and a searchable BiFPN neck (EfficientDet-D0 size: 64 channels, up to 3
# layers) on COCO at 512 px: node inputs, fusion rules and depth are choices; the backbone is fixed.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['tasknas.plugins.detection'], allow_failed_imports=False)

image_size = (512, 512)
model = dict(
    data_preprocessor=dict(pad_size_divisor=128),
    backbone=dict(
        _delete_=True,
        type='EfficientNet',
        arch='b0',
        out_indices=(3, 4, 5),  # C3-C5: 40, 112, 320 channels
        norm_cfg=dict(type='BN', requires_grad=True, eps=1e-3, momentum=0.01),
        init_cfg=None),  # from scratch here; pass init_cfg=dict(type='Pretrained', ...) for ImageNet weights
    neck=dict(
        _delete_=True,
        type='SearchableBiFPN',
        in_channels=[40, 112, 320],
        out_channels=64,
        num_outs=5,
        num_layers=3,
        norm_cfg=dict(type='BN', requires_grad=True, eps=1e-3, momentum=0.01)),
    bbox_head=dict(in_channels=64, feat_channels=64, stacked_convs=3))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

custom_hooks = [dict(type='ArchSamplerHook', sampling='flops', seed=0, input_size=image_size)]
sync_bn = 'torch'
find_unused_parameters = True
