"""FairNAS and GreedyNAS sampling of ArchSamplerHook in segmentor supernet training (the joint DetNAS backbone +
ASPP head space), on the generated mask set with the stock Runner."""
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from tasknas.core import choices_of
from tasknas.plugins.openmmlab.hooks import ArchSamplerHook, unwrap
from tests.segmentation.conftest import JOINT, tiny_config


class Watch(Hook):
    """Optimizer steps per iteration, the options whose weights changed, and the paths of each iteration."""

    priority = "LOW"

    def __init__(self):
        self.steps, self.moved, self.paths, self.count = [], [], [], 0

    def before_train(self, runner):
        runner.optim_wrapper.optimizer.register_step_post_hook(lambda *_: setattr(self, "count", self.count + 1))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        sampler = next(h for h in runner.hooks if isinstance(h, ArchSamplerHook))
        self.paths.append(list(sampler.paths))
        self.start = self.count
        self.before = {(c.key, o): [p.detach().clone() for p in m.parameters()]
                       for c in choices_of(unwrap(runner.model)) if c.holds_modules for o, m in c.candidates.items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.steps.append(self.count - self.start)
        model = unwrap(runner.model)
        self.moved.append({(c.key, o) for c in choices_of(model) if c.holds_modules for o, m in c.candidates.items()
                           if any(not torch.equal(a, p.detach()) for a, p in zip(self.before[(c.key, o)],
                                                                                   m.parameters()))})


@pytest.mark.parametrize("sampling", ["fair", "greedy"])
def test_segmentor_supernet_trains_with_multi_path_sampling(sampling, seg_root, tmp_path):
    cfg = tiny_config(JOINT, seg_root, tmp_path, iters=2)
    for hook in cfg.custom_hooks:
        if hook["type"] == "ArchSamplerHook":
            hook.update(sampling=sampling, candidates=3, keep=2)
    runner = Runner.from_cfg(cfg)
    watch = Watch()
    runner.register_hook(watch)
    runner.train()
    assert watch.steps == [1, 1]  # one optimizer step per iteration, whatever the number of paths
    model = unwrap(runner.model)
    if sampling == "fair":
        m = max(len(c.options) for c in choices_of(model))
        options = {(c.key, str(o)) for c in choices_of(model) for o in c.options}
        # every option of a module choice that has weights is trained in each iteration
        weighted = {(c.key, o) for c in choices_of(model) if c.holds_modules for o, module in c.candidates.items()
                    if any(True for _ in module.parameters())}
        for paths, moved in zip(watch.paths, watch.moved):
            assert len(paths) == m
            assert {(key, str(option)) for path in paths for key, option in path} == options  # all used
            assert weighted <= moved
    else:
        sampler = next(h for h in runner.hooks if isinstance(h, ArchSamplerHook))
        assert all(len(paths) == 2 for paths in watch.paths) and sampler.greedy.evaluated == 6
        assert len(sampler.greedy.pool) >= 2
    assert (tmp_path / "supernet.pth").is_file()
