# ADE20K for a supernet: mmseg's data settings (a local copy under data/ade/ADEChallengeData2016/, nothing is
# downloaded), 512x512 crops, 160k iterations, SPOS path sampling before every iteration. ADE20K masks store
# label + 1 with 0 for "other": reduce_zero_label=True maps 0 to the ignore index 255 and 1..150 to 0..149.
# 2000 train images are held out for the search (`tasknas search CONFIG --split heldout`), so candidates are
# never ranked on the validation split used for reporting.
# BatchNorm: the models use plain BN, which is what runs in one process (CPU or one GPU). Under torchrun on GPUs
# mmengine converts every BN, those of all options included, to SyncBN (sync_bn='torch'). Under torchrun on CPU
# (gloo; SyncBN has no CPU kernels) pass --cfg-options sync_bn=None: tasknas all-reduces BN recalibration itself.
_base_ = ['mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
          'mmseg::_base_/schedules/schedule_160k.py']

train_dataloader = dict(dataset=dict(
    _delete_=True, type='HeldOutSplit', part='train', held_out=2000, seed=0,
    dataset=dict(type='ADE20KDataset', data_root='data/ade/ADEChallengeData2016', reduce_zero_label=True,
                 data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(dataset=dict(reduce_zero_label=True))
test_dataloader = val_dataloader

custom_hooks = [dict(type='ArchSamplerHook', sampling='flops', seed=0, input_size=(512, 512))]
sync_bn = 'torch'
find_unused_parameters = True  # DDP: the options off the sampled path get no gradient
