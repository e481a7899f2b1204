# Cityscapes for a supernet: mmseg's data settings (a local copy under data/cityscapes/, nothing is downloaded;
# set data_root for another place), 512x1024 crops, 80k iterations, SPOS path sampling before every iteration.
# 500 train images are held out for the search (`tasknas search CONFIG --split heldout`), so candidates are
# never ranked on the val split used for reporting.
# BatchNorm: the models use plain BN, which is what runs in one process (CPU or one GPU). Under torchrun on GPUs
# mmengine converts every BN, those of all options included, to SyncBN (sync_bn='torch'). Under torchrun on CPU
# (gloo; SyncBN has no CPU kernels) pass --cfg-options sync_bn=None: tasknas all-reduces BN recalibration itself.
_base_ = ['mmseg::_base_/datasets/cityscapes.py', 'mmseg::_base_/default_runtime.py',
          'mmseg::_base_/schedules/schedule_80k.py']

train_dataloader = dict(dataset=dict(
    _delete_=True, type='HeldOutSplit', part='train', held_out=500, seed=0,
    dataset=dict(type='CityscapesDataset', data_root='data/cityscapes/',
                 data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
                 pipeline={{_base_.train_pipeline}})))

custom_hooks = [dict(type='ArchSamplerHook', sampling='flops', seed=0, input_size=(512, 1024))]
sync_bn = 'torch'
find_unused_parameters = True  # DDP: the options off the sampled path get no gradient
