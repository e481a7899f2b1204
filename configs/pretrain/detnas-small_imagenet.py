# DetNAS step 1 as published: the 20-block detnas_shufflenet_small supernet (300M-class) on ImageNet, SPOS
# sampling, 224x224 crops. data.root: an ImageNet-style folder train/<class>/*.JPEG (val/<class>/* optional).
# GPU-sized: run under torchrun (`torchrun --nproc-per-node 8 -m tasknas.cli pretrain ...`); batch_size is global.
model = dict(space='detnas_shufflenet_small', last_channels=1024)
data = dict(dataset='image_folder', root='data/imagenet', image_size=224, channels=3, held_out=50000,
            batch_size=1024, eval_batch_size=500, flip=True)
train = dict(epochs=120, optimizer='sgd', lr=0.5, min_lr=1e-5, weight_decay=4e-5, warmup_epochs=1,
             label_smoothing=0.1, grad_clip=None)
sampler = dict(type='flops', num_bins=7)
seed = 0
