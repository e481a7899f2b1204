# RetinaNet R-50 with a searchable NAS-FPN neck on COCO (640 crops): the merging cells of mmdet's NASFPN
# (7 cells, stacked 7 times, 256 channels) become choices; the backbone is fixed.
# Train the supernet with `tasknas train THIS`, then `tasknas search` / `tasknas export` as for a backbone.
_base_ = 'mmdet::nas_fpn/retinanet_r50_nasfpn_crop640-50e_coco.py'
custom_imports = dict(imports=['tasknas.plugins.detection'], allow_failed_imports=False)

model = dict(
    neck=dict(
        _delete_=True,
        type='SearchableNASFPN',
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        num_outs=5,
        stack_times=7,
        num_cells=7,
        start_level=1,
        norm_cfg=dict(type='BN', requires_grad=True)))

# SPOS path sampling before every iteration (the neck's FLOPs hardly vary: uniform sampling).
custom_hooks = [dict(type='ArchSamplerHook', sampling='uniform', seed=0, input_size=(640, 640))]

# GPU training: SyncBN everywhere; DDP must tolerate parameters an iteration does not use.
sync_bn = 'torch'
find_unused_parameters = True
