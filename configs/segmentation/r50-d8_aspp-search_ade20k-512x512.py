# Decode-head search: ASPP / DeepLabV3+ head on a fixed ResNet-50-d8, on ADE20K.
# Train the supernet: `tasknas train THIS` (or mmseg's tools/train.py; every iteration runs one sampled path).
# Search on the held-out train images: `tasknas search THIS --checkpoint WORK/supernet.pth --work-dir S
# --split heldout --macs-max G`; export: `tasknas export THIS --checkpoint ... --arch S/best.arch.json`.
_base_ = ['./_base_/models/r50-d8_aspp-search.py', './_base_/ade20k-512x512_search.py']

crop_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes=150),
             auxiliary_head=dict(num_classes=150))
