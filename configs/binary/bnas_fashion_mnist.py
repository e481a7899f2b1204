"""BNAS (Chen et al., AAAI 2020) on Fashion-MNIST, sized for a 2-core CPU like bats_fashion_mnist.py.

PC-DARTS over the DARTS 8-op space with XNOR-binarized convs: partial channels K=4 with channel shuffle,
edge normalization, alpha frozen for the first epoch, then operation-space reduction by performance (keep
the better half, then remove the worst op per edge each epoch). Weights-only binarization, as the paper's
public test code (``--set search.stages.0.mode=weights_activations --set train.mode=weights_activations``
for the fully binary variant). Stem, classifier and the 1x1 preprocessing stay full precision.
"""
_base_ = ["bats_fashion_mnist.py"]
model = dict(op_set="darts", binary_preprocess=False, search_channels=8)
search = dict(
    algorithm="bnas",
    stages=[dict(mode="weights", epochs=6)],
    partial_channels=4,
    edge_norm=True,
    arch_warmup_epochs=1,
    temperature=dict(start=1.0, end=1.0, kind="constant"),
    reduction=dict(every=1, samples=8, eval_batches=2, score="mean", keep_half=True),
)
train = dict(mode="weights")
