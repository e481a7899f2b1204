# The generated shapes set (tasknas.plugins.segmentation.synthetic): 128x128 PNG images and masks, 5 classes
# (background + disc/square/triangle/cross), 255 on shape rims. `tasknas demo seg` writes it, or
# `write_shapes_seg('data/segshapes', {'train': 300, 'val': 100, 'test': 100}, 128)`.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['tasknas.plugins.segmentation'], allow_failed_imports=False)

data_root = 'data/segshapes/'
crop_size = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                         bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=crop_size)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')]


def _split(name, pipeline):
    return dict(type='SegShapesDataset', data_root=data_root, pipeline=pipeline,
                data_prefix=dict(img_path=f'img_dir/{name}', seg_map_path=f'ann_dir/{name}'))


train_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                        sampler=dict(type='InfiniteSampler', shuffle=True), dataset=_split('train', train_pipeline))
val_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                      sampler=dict(type='DefaultSampler', shuffle=False), dataset=_split('val', test_pipeline))
test_dataloader = dict(val_dataloader, dataset=_split('test', test_pipeline))
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=1000, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000))
randomness = dict(seed=0)
custom_hooks = [dict(type='ArchSamplerHook', sampling='flops', seed=0, input_size=crop_size)]

# CPU: plain BN, in one process and under torchrun (gloo; `tasknas train` sets the process group up).
sync_bn = None
model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                         find_unused_parameters=True)
