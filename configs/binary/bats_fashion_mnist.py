"""BATS on Fashion-MNIST, sized for a 2-core CPU (about 25 minutes for search + binary + full-precision retrain).

Data: the Debian package's folder /usr/share/datasets/fashion-mnist, else the cache that
scripts/fetch_fashion_mnist.sh fills (set data.root to use another folder). The stem has stride 2 (cells
work at 14x14) and the search and retraining use seeded subsets of the 60,000 training images; the
test split is the full 10,000. For a longer run raise the subsets, the epochs and the widths with --set.
"""
data = dict(
    dataset="fashion_mnist",
    root=None,
    search_subset=4000,  # split 50/50 into the weight part and the held-out alpha part
    search_val_fraction=0.5,
    train_subset=12000,
    batch_size=64,
    eval_batch_size=500,
    crop_padding=2,
)
model = dict(
    op_set="bats",
    groups=4,
    scale="mean",
    weight_estimator="ste",
    activation_estimator="ste",
    steps=4,
    stem_multiplier=3,
    stem_stride=2,
    search_channels=8,
    search_layers=5,
    channels=16,
    layers=8,
)
search = dict(
    stages=[dict(mode="activations", epochs=2), dict(mode="weights_activations", epochs=2)],
    optimizer="adam",
    lr=2e-3,
    arch_lr=3e-3,
    arch_warmup_epochs=1,  # alpha frozen while the weights are untrained (docs/binary.md, "Does the search ...")
    temperature=dict(start=1.0, end=0.2, kind="exponential"),
)
train = dict(epochs=3, optimizer="adamw", lr=2e-3, weight_decay=0.0)
seed = 0
