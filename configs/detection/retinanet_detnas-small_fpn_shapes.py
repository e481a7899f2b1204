# RetinaNet + DetNAS small supernet on the generated shapes set (the demo and the tests): CPU-sized.
# Write the data with `tasknas detection-data data/shapes` (or let `tasknas demo` do it).
_base_ = './retinanet_detnas-small_fpn_1x_coco.py'

data_root = 'data/shapes/'
metainfo = dict(classes=('disc', 'square', 'triangle', 'cross'))
image_size = (128, 128)

model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    neck=dict(out_channels=64),  # a CPU-sized neck and head; the backbone is the full DetNAS small space
    bbox_head=dict(num_classes=4, in_channels=64, feat_channels=64, stacked_convs=2),
    test_cfg=dict(score_thr=0.01))  # a briefly trained detector scores low; 0.05 would drop everything

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
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),  # iteration-based training
    dataset=dict(data_root=data_root, ann_file='annotations/train.json', data_prefix=dict(img='train/'),
                 metainfo=metainfo, filter_cfg=dict(filter_empty_gt=True, min_size=4), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='annotations/val.json', data_prefix=dict(img='val/'),
                 metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=600, val_interval=600)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=600, eta_min=1e-4, by_epoch=False, begin=0, end=600)]
optim_wrapper = dict(optimizer=dict(lr=0.02), clip_grad=dict(max_norm=10.0))
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(by_epoch=False, interval=600))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
custom_hooks = [dict(type='ArchSamplerHook', sampling='flops', seed=0, input_size=image_size)]

# CPU: plain BN; under torchrun the gloo process group is set up by `tasknas train` before the Runner.
sync_bn = None
model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                         find_unused_parameters=True)
