# RetinaNet with the searchable DetNAS small (300M-class) ShuffleNetV2 supernet as backbone, on COCO.
# Train the supernet: `tasknas train THIS` (or the stock Runner); each iteration runs one sampled path.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['tasknas.plugins.detection'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SearchableShuffleNetBackbone',
        space='detnas_shufflenet_small',
        out_indices=(0, 1, 2, 3),
        init_cfg=None),  # from scratch; DetNAS starts from an ImageNet-trained supernet (init_cfg=Pretrained)
    neck=dict(in_channels=[64, 160, 320, 640]))  # C2-C5; FPN starts at C3 (start_level=1)

# SPOS path sampling before every iteration, the same arch on every rank.
custom_hooks = [dict(type='ArchSamplerHook', sampling='uniform', seed=0, input_size=(800, 1333))]

# GPU training: SyncBN for every BN (all options included), and DDP must tolerate the unused options.
sync_bn = 'torch'
find_unused_parameters = True
