# DeepLabV3 (mmseg's ASPPHead) on the searchable DetNAS small supernet (20 choice blocks, C2-C5 widths
# 64/160/320/640 at strides 4-32): backbone search. ShuffleNet's C5 is at stride 32 where mmseg's ResNet-d8 is
# at 8, so the ASPP rates (1, 12, 24, 36) are scaled by 1/4. BN here; see the dataset base for SyncBN.
_base_ = 'mmseg::_base_/models/deeplabv3_r50-d8.py'
custom_imports = dict(imports=['tasknas.plugins.segmentation'], allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='SearchableShuffleNetBackbone',
        space='detnas_shufflenet_small',
        out_indices=(0, 1, 2, 3),
        init_cfg=None),  # from scratch; DetNAS starts from an ImageNet-trained supernet (init_cfg=Pretrained)
    decode_head=dict(in_channels=640, in_index=3, dilations=(1, 3, 6, 9), norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=320, in_index=2, norm_cfg=norm_cfg))
