"""Supernet training inside the stock mmengine Runner, from the project's real configs, on generated data."""
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from tasknas.core import choices_of
from tasknas.plugins.detection import ArchSamplerHook, TrustedResumeRunner
from tasknas.plugins.openmmlab.hooks import unwrap
from tests.detection.conftest import CONFIGS, tiny_config

DETECTORS = {
    "retinanet": CONFIGS / "retinanet_detnas-small_fpn_1x_coco.py",
    "faster-rcnn": CONFIGS / "faster-rcnn_detnas-small_fpn_1x_coco.py",
    "fcos": CONFIGS / "fcos_detnas-small_fpn_gn-head_1x_coco.py",
}


class PathWatch(Hook):
    """Checks, around every iteration, that only the sampled options' weights and momenta change."""

    priority = "LOW"  # after ArchSamplerHook (VERY_HIGH) has activated the iteration's arch

    def __init__(self):
        self.archs, self.checked = [], 0

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = unwrap(runner.model)
        opt = runner.optim_wrapper.optimizer
        self.archs.append({c.key: c.active for c in choices_of(model)})
        self.before = {}
        for choice in choices_of(model):
            for option, module in choice.candidates.items():
                for name, p in module.named_parameters():
                    buf = opt.state.get(p, {}).get("momentum_buffer")
                    self.before[(choice.key, option, name)] = (p, p.detach().clone(),
                                                               None if buf is None else buf.clone())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        opt = runner.optim_wrapper.optimizer
        active = self.archs[-1]
        moved = 0
        for (key, option, name), (p, value, buf) in self.before.items():
            now_buf = opt.state.get(p, {}).get("momentum_buffer")
            if option == str(active[key]):
                moved += not torch.equal(value, p.detach())
            else:
                assert torch.equal(value, p.detach()), f"{key}/{option}/{name} changed off the path"
                assert (buf is None and now_buf is None) or torch.equal(buf, now_buf), f"{key}/{option}/{name} momentum"
        assert moved > 0
        self.checked += 1


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_supernet_trains_in_the_stock_runner_touching_only_the_sampled_path(name, shapes_root, tmp_path):
    cfg = tiny_config(DETECTORS[name], shapes_root, tmp_path, iters=3)
    runner = Runner.from_cfg(cfg)
    watch = PathWatch()
    runner.register_hook(watch)
    runner.train()
    assert watch.checked == 3
    assert len({tuple(sorted(a.items())) for a in watch.archs}) == 3  # a new path every iteration
    sampler = next(h for h in runner.hooks if isinstance(h, ArchSamplerHook))
    assert sampler.current.as_dict() == watch.archs[-1]
    assert (tmp_path / "iter_3.pth").exists()


def test_sampler_rng_is_checkpointed_so_resumed_training_draws_the_same_archs(shapes_root, tmp_path):
    cfg = tiny_config(DETECTORS["retinanet"], shapes_root, tmp_path / "full", iters=4)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=2)
    full = TrustedResumeRunner.from_cfg(cfg)  # writes its checkpoints as plain data
    watch_full = PathWatch()
    full.register_hook(watch_full)
    full.train()
    # the file needs nothing beyond what torch's safe loader admits
    plain = torch.load(tmp_path / "full" / "iter_2.pth", map_location="cpu", weights_only=True)
    assert "message_hub" in plain and "state_dict" in plain

    cfg2 = tiny_config(DETECTORS["retinanet"], shapes_root, tmp_path / "resumed", iters=4)
    cfg2.resume = True
    cfg2.load_from = str(tmp_path / "full" / "iter_2.pth")
    resumed = TrustedResumeRunner.from_cfg(cfg2)
    watch_resumed = PathWatch()
    resumed.register_hook(watch_resumed)
    resumed.train()
    assert watch_resumed.archs == watch_full.archs[2:]


def test_a_stock_runner_checkpoint_is_refused_for_resuming_in_one_line(shapes_root, tmp_path):
    cfg = tiny_config(DETECTORS["retinanet"], shapes_root, tmp_path / "stock", iters=2)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=2)
    Runner.from_cfg(cfg).train()  # the stock Runner pickles HistoryBuffer and numpy objects
    cfg2 = tiny_config(DETECTORS["retinanet"], shapes_root, tmp_path / "resumed", iters=4)
    cfg2.resume = True
    cfg2.load_from = str(tmp_path / "stock" / "iter_2.pth")
    with pytest.raises(ValueError, match=r"refused to resume from '.*iter_2.pth': it does not load as plain data"):
        TrustedResumeRunner.from_cfg(cfg2).train()


def test_hook_rejects_bad_settings_and_non_searchable_models():
    with pytest.raises(ValueError, match="sampling 'random' is not one of"):
        ArchSamplerHook(sampling="random")
    with pytest.raises(ValueError, match=r"input_size must be \(height, width\)"):
        ArchSamplerHook(input_size=(8, 8))


def test_an_unknown_space_in_a_config_is_named(shapes_root, tmp_path):
    from tasknas.plugins.openmmlab.config import build_model

    cfg = tiny_config(DETECTORS["retinanet"], shapes_root, tmp_path)
    cfg.model.backbone.space = "detnas_shufflenet_medium"
    with pytest.raises(ValueError, match=r"unknown search space 'detnas_shufflenet_medium'; known spaces: \["):
        build_model(cfg, None, "cpu")
    cfg.model.backbone.space = "detnas_shufflenet_small"
    cfg.model.backbone.out_indices = (1, 4)
    with pytest.raises(ValueError, match=r"out_indices \(1, 4\) must be a non-empty subset of 0..3"):
        build_model(cfg, None, "cpu")
