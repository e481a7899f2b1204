# Supernet pre-training on Fashion-MNIST with the Fashion-MNIST-sized DetNAS space (10 blocks, 4^10 archs),
# SPOS uniform single-path sampling; its `rank` section is the ranking report's (`tasknas rank`).
# Data: the Debian package dataset-fashion-mnist or scripts/fetch_fashion_mnist.sh (nothing is downloaded).
model = dict(space='detnas_shufflenet_fmnist', last_channels=256)
data = dict(dataset='fashion_mnist', channels=1, held_out=10000, batch_size=128, eval_batch_size=500,
            crop_padding=2, flip=True)
train = dict(epochs=4, optimizer='sgd', lr=0.1, min_lr=1e-4, weight_decay=4e-5, label_smoothing=0.1, grad_clip=5.0)
sampler = dict(type='uniform')
rank = dict(
    archs=24, scan=200, top=3, scan_calib_images=500, scan_eval_images=1000, calib_images=2000, eval_images=None,
    noise_archs=8, k=5, resolution=0.1, bootstrap=2000, seeds=[0, 1],
    # EcoNAS-style short recipe: all 50k training images, one epoch.
    standalone=dict(epochs=1, images=50000, batch_size=128, optimizer='sgd', lr=0.1, weight_decay=4e-5))
seed = 0
