"""Tiny pre-training configs on the generated shapes set: 16x16 images, a few steps, seconds on one CPU thread."""
from tasknas.pretrain.config import PretrainConfig, config_from_dict


def tiny_config(**sections) -> PretrainConfig:
    """The Fashion-MNIST-sized space on 16x16 generated shapes (96 images, 32 held out), 2 epochs of 4 steps."""
    values = {
        "model": {"space": "detnas_shufflenet_fmnist", "last_channels": 32},
        "data": {"dataset": "generated", "generated_images": 96, "image_size": 16, "channels": 1, "held_out": 32,
                 "batch_size": 16, "eval_batch_size": 32, "crop_padding": 1, "flip": True},
        "train": {"epochs": 2, "lr": 0.05},
        "sampler": {"type": "uniform"},
        "rank": {"archs": 4, "scan": 6, "top": 1, "scan_calib_images": 16, "scan_eval_images": 16,
                 "calib_images": 32, "noise_archs": 2, "k": 2, "bootstrap": 200,
                 "standalone": {"epochs": 1, "images": 32, "batch_size": 16}},
        "seed": 0,
    }
    for name, update in sections.items():
        values[name] = {**values[name], **update} if isinstance(update, dict) else update
    return config_from_dict(values)
