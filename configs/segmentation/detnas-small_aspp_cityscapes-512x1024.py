# Backbone search (DetNAS small supernet) under mmseg's DeepLabV3 ASPPHead, on Cityscapes.
# Train the supernet: `tasknas train THIS` (or mmseg's tools/train.py; every iteration runs one sampled path).
# Search on the held-out train images: `tasknas search THIS --checkpoint WORK/supernet.pth --work-dir S
# --split heldout --macs-max G`; export: `tasknas export THIS --checkpoint ... --arch S/best.arch.json`.
_base_ = ['./_base_/models/detnas-small_aspp.py', './_base_/cityscapes-512x1024_search.py']

crop_size = (512, 1024)
model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes=19),
             auxiliary_head=dict(num_classes=19))
