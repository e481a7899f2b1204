# DetNAS step 1 for the shapes detection demo: the 20-block detnas_shufflenet_small supernet pre-trained on a
# generated classification set of shapes (6 classes, 64x64 RGB) before fine-tuning on the shapes detection set
# (configs/detection/retinanet_detnas-small_fpn_shapes_pretrained.py). channels=3: the detector takes RGB.
model = dict(space='detnas_shufflenet_small', last_channels=1024)
data = dict(dataset='generated', generated_images=12000, image_size=64, channels=3, held_out=2000, batch_size=64,
            eval_batch_size=250, flip=True)
train = dict(epochs=3, optimizer='sgd', lr=0.1, min_lr=1e-4, weight_decay=4e-5, label_smoothing=0.1, grad_clip=5.0)
sampler = dict(type='flops', num_bins=7)
seed = 0
