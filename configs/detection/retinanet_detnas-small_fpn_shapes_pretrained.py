# The shapes detector whose 20-block supernet starts from classification pre-training (DetNAS step 1):
# `tasknas pretrain configs/pretrain/detnas-small_shapes.py` writes the checkpoint read here. Only the backbone's
# tensors are loaded (prefix 'backbone.'); the classifier head of the checkpoint is skipped. `_delete_=True`:
# the base config's init_cfg is None, which a dict cannot be merged into.
_base_ = './retinanet_detnas-small_fpn_shapes.py'

model = dict(backbone=dict(init_cfg=dict(
    _delete_=True, type='Pretrained', checkpoint='work_dirs/pretrain/detnas-small_shapes/supernet.pth',
    prefix='backbone.')))
