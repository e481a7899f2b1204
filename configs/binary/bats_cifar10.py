"""BATS on CIFAR-10 (32x32 RGB), in the layout of the DARTS CIFAR setting; a GPU-sized run.

CIFAR-10 cannot be downloaded here: pass the folder that holds cifar-10-batches-py (the python version),
e.g. ``--set data.root=/data/cifar10``. The group count, widths, depths and epochs below are our
choices where the paper's values could not be confirmed (docs/binary.md lists them).
"""
data = dict(
    dataset="cifar10",
    root=None,  # required: --set data.root=/path/to/the/folder/with/cifar-10-batches-py
    search_subset=None,  # all 50,000 training images, split 25,000 / 25,000 as DARTS
    search_val_fraction=0.5,
    train_subset=None,
    batch_size=64,
    eval_batch_size=500,
    crop_padding=4,
)
model = dict(
    op_set="bats",
    groups=4,
    scale="mean",
    weight_estimator="ste",
    activation_estimator="ste",
    steps=4,
    stem_multiplier=3,
    stem_stride=1,
    search_channels=16,
    search_layers=8,
    channels=36,
    layers=20,
)
search = dict(
    stages=[dict(mode="activations", epochs=25), dict(mode="weights_activations", epochs=25)],
    optimizer="adam",
    lr=1e-3,
    arch_lr=3e-4,
    arch_weight_decay=1e-3,
    arch_warmup_epochs=15,  # alpha frozen for the first 15 of 50 epochs, as PC-DARTS
    temperature=dict(start=1.0, end=0.2, kind="exponential"),
)
train = dict(epochs=250, optimizer="adamw", lr=2e-3, weight_decay=0.0, warmup_epochs=5)
seed = 0
