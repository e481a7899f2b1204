"""CP-NAS (Zhuo et al., IJCAI 2020) on Fashion-MNIST, sized for a 2-core CPU like bats_fashion_mnist.py.

A 1-bit child (weights and activations binary) and a full-precision parent share the sampled architecture;
the DARTS 8-op space without ReLU in front of the binary convs. One epoch of uniform path sampling (warm-up),
then 7 rounds (8 + 7 + ... + 2 = 35 sampled architectures), one per epoch, each removing the worst op of
every edge by z = beta * (A_parent - A_child) + A_child. Stem, classifier and 1x1 preprocessing stay real.
"""
_base_ = ["bats_fashion_mnist.py"]
model = dict(op_set="darts", binary_preprocess=False)
search = dict(
    algorithm="cpnas",
    stages=[dict(mode="weights_activations", epochs=8)],
    arch_warmup_epochs=1,
    temperature=dict(start=1.0, end=1.0, kind="constant"),
    cpnas=dict(beta=1.0, kernel_lambda=1e-3, center_theta=0.0, eval_batches=2),
)
train = dict(mode="weights_activations")
