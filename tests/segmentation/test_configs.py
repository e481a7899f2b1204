"""The Cityscapes and ADE20K configs (inheriting mmseg:: bases) build their real models and run one stock Runner
iteration, then validation, on generated data in each data set's on-disk layout at 64 px."""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from tasknas.core import space_of
from tasknas.plugins.segmentation.synthetic import write_shapes_seg
from tests.segmentation.conftest import CONFIGS, tiny_config

DATASETS = {"cityscapes": ("train", "val", 19, "CityscapesDataset"),
            "ade20k": ("training", "validation", 150, "ADE20KDataset")}
SEARCHES = {  # config stem -> the parts holding choices
    "detnas-small_aspp": {"backbone"},
    "r50-d8_aspp-search": {"decode_head"},
    "mnv2_cells-search": {"decode_head"},
    "detnas-small_aspp-search": {"backbone", "decode_head"},
}
CROPS = {"cityscapes": "512x1024", "ade20k": "512x512"}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict:
    roots = {}
    for layout, (train, val, _, _) in DATASETS.items():
        roots[layout] = tmp_path_factory.mktemp(layout)
        write_shapes_seg(roots[layout], {train: 4, val: 2}, image_size=64, seed=0, layout=layout)
    return roots


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("search", sorted(SEARCHES))
def test_config_builds_and_trains_one_iteration_with_the_stock_runner(search, dataset, layouts, tmp_path):
    path = CONFIGS / f"{search}_{dataset}-{CROPS[dataset]}.py"
    train, val, num_classes, dataset_type = DATASETS[dataset]
    original = Config.fromfile(str(path))
    assert original.sync_bn == "torch"  # SyncBN only under torchrun (mmengine converts when distributed)
    assert original.model.decode_head.num_classes == num_classes
    assert original.train_dataloader.dataset.type == "HeldOutSplit"  # the search scores on held-out train images
    assert original.train_dataloader.dataset.dataset.type == dataset_type
    if dataset == "ade20k":
        assert original.train_dataloader.dataset.dataset.reduce_zero_label is True
    cfg = tiny_config(original, layouts[dataset], tmp_path, iters=1, layout=dataset, splits=(train, val))
    cfg.train_dataloader.dataset.held_out = 1
    # What the shapes tests cover already, left out here to keep eight Runners fast: FLOPs-binned sampling (its
    # cost table), checkpoint writing and the visualiser's config dump (mmengine formats the config with yapf).
    for hook in cfg.custom_hooks:
        hook["sampling"] = "uniform"
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=10, save_last=False)
    cfg.visualizer.vis_backends = []
    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert {name for name, child in model.named_children() if space_of(child)} == SEARCHES[search]
    norms = {type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert norms == {"BatchNorm2d"}
    runner.train()  # one iteration, then validation with the config's IoUMetric
    assert 0.0 <= runner.message_hub.get_scalar("val/mIoU").current() <= 100.0
