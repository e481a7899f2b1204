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


def _resume(cfg, checkpoint, hook: Hook) -> None:
    """Resume training from ``checkpoint`` with ``TrustedResumeRunner``, ``hook`` registered."""
    cfg.resume = True
    cfg.load_from = str(checkpoint)
    runner = TrustedResumeRunner.from_cfg(cfg)
    runner.register_hook(hook)
    runner.train()


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

    watch_resumed = PathWatch()
    _resume(tiny_config(DETECTORS["retinanet"], shapes_root, tmp_path / "resumed", iters=4),
            tmp_path / "full" / "iter_2.pth", watch_resumed)
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


class StepCounter(Hook):
    """Counts optimizer steps and the training forward passes of one choice per iteration, and records which
    options' weights changed in each iteration."""

    priority = "LOW"

    def __init__(self):
        self.steps, self.passes, self.moved = [], [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = unwrap(runner.model)
        if not hasattr(self, "handle"):
            opt = runner.optim_wrapper.optimizer
            self.count = 0
            self.handle = opt.register_step_post_hook(lambda *_: setattr(self, "count", self.count + 1))
            self.choice = choices_of(model)[0]
            self.choice.register_forward_hook(lambda *_: setattr(self, "forwards", self.forwards + 1))
        self.count_before, self.forwards = self.count, 0
        self.before = {(c.key, option): [p.detach().clone() for p in module.parameters()]
                       for c in choices_of(model) for option, module in c.candidates.items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = unwrap(runner.model)
        self.steps.append(self.count - self.count_before)
        self.passes.append(self.forwards)
        self.moved.append({(c.key, option) for c in choices_of(model) for option, module in c.candidates.items()
                           if any(not torch.equal(a, p.detach())
                                  for a, p in zip(self.before[(c.key, option)], module.parameters()))})


def _with_sampler(cfg, **settings):
    for hook in cfg.custom_hooks:
        if hook["type"] == "ArchSamplerHook":
            hook.update(settings)
    return cfg


def test_fair_sampling_trains_every_option_once_per_iteration_with_one_optimizer_step(shapes_root, tmp_path):
    cfg = _with_sampler(tiny_config(DETECTORS["retinanet"], shapes_root, tmp_path, iters=2), sampling="fair")
    runner = Runner.from_cfg(cfg)
    counter = StepCounter()
    runner.register_hook(counter)
    runner.train()
    sampler = next(h for h in runner.hooks if isinstance(h, ArchSamplerHook))
    model = unwrap(runner.model)
    every = {(c.key, option) for c in choices_of(model) for option in c.candidates}
    m = max(len(c.candidates) for c in choices_of(model))
    assert m == 4 and len(sampler.paths) == m
    for key, options in sampler.space.items():  # the last iteration's paths: a permutation per choice
        assert sorted(str(p[key]) for p in sampler.paths) == sorted(str(o) for o in options)
    assert counter.steps == [1, 1]  # one optimizer step per m paths
    assert counter.passes == [m, m]  # every path ran forward on the batch
    assert counter.moved == [every, every]  # every option of every choice was trained in each iteration
    assert "train_step" not in runner.model.__dict__  # the multi-path step is removed after training
    assert (tmp_path / "supernet.pth").is_file()


class GreedySpy(Hook):
    """Records every iteration's candidates with their held-out losses and the paths kept, and the GreedyNAS
    state right after a resume (``before_train`` runs after the checkpoint is loaded)."""

    priority = "LOW"

    def __init__(self):
        self.calls, self.kept, self.state = [], [], None

    def before_train(self, runner):
        sampler = next(h for h in runner.hooks if isinstance(h, ArchSamplerHook))
        self.state = sampler.greedy.state_dict()
        keep_best = sampler.greedy.keep_best

        def spy(archs, losses):
            self.calls.append((list(archs), list(losses)))
            return keep_best(archs, losses)

        sampler.greedy.keep_best = spy

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        sampler = next(h for h in runner.hooks if isinstance(h, ArchSamplerHook))
        self.kept.append([p.as_dict() for p in sampler.paths])


def test_greedy_sampling_trains_the_best_candidates_and_resumes_its_pool(shapes_root, tmp_path):
    settings = dict(sampling="greedy", candidates=3, keep=2, greedy_batches=2)
    cfg = _with_sampler(tiny_config(DETECTORS["retinanet"], shapes_root, tmp_path / "full", iters=4), **settings)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=2)
    full = TrustedResumeRunner.from_cfg(cfg)
    counter, spy = StepCounter(), GreedySpy()
    full.register_hook(counter)
    full.register_hook(spy)
    full.train()
    sampler = next(h for h in full.hooks if isinstance(h, ArchSamplerHook))
    assert counter.steps == [1, 1, 1, 1] and counter.passes == [2, 2, 2, 2]  # the 2 kept of 3, one step
    assert sampler.greedy.evaluated == 12 and len(sampler.held_out) == 2
    assert spy.state == {"pool": [], "evaluated": 0}
    for (candidates, losses), kept in zip(spy.calls, spy.kept):
        assert len(candidates) == 3 and all(torch.isfinite(torch.tensor(losses)))
        best = sorted(zip(losses, [c.to_json(indent=None) for c in candidates], candidates))[:2]
        assert kept == [arch.as_dict() for _, _, arch in best]  # the two of lowest held-out loss are trained
        assert all(arch.to_json(indent=None) in sampler.greedy.pool for _, _, arch in best)
    # scoring a path leaves every BN running statistic as it was
    model = unwrap(full.model)
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    path = spy.calls[-1][0][0]
    assert sampler._held_out_loss(model, path, 3) == pytest.approx(spy.calls[-1][1][0], rel=0.5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    # the pool and the RNG are in the plain-data checkpoint: a resumed run starts from them, and its first
    # iteration (same weights, same held-out batch) keeps the same paths as the uninterrupted run
    saved = torch.load(tmp_path / "full" / "iter_2.pth", map_location="cpu", weights_only=True)
    spy2 = GreedySpy()
    _resume(_with_sampler(tiny_config(DETECTORS["retinanet"], shapes_root, tmp_path / "resumed", iters=4), **settings),
            tmp_path / "full" / "iter_2.pth", spy2)
    assert spy2.state == saved["meta"]["tasknas_arch_sampler"]["greedy"] and len(spy2.state["pool"]) >= 2
    assert spy2.kept[0] == spy.kept[2]


def test_multi_path_sampling_refuses_gradient_accumulation_and_bad_greedy_settings(shapes_root, tmp_path):
    cfg = _with_sampler(tiny_config(DETECTORS["retinanet"], shapes_root, tmp_path, iters=1), sampling="fair")
    cfg.optim_wrapper.accumulative_counts = 2
    with pytest.raises(ValueError, match=r"'fair' accumulates .* optim_wrapper.accumulative_counts to 1, got 2"):
        Runner.from_cfg(cfg).train()
    with pytest.raises(ValueError, match="greedy_data 'test' is not one of"):
        ArchSamplerHook(sampling="greedy", greedy_data="test")
    with pytest.raises(ValueError, match="keep <= candidates"):
        ArchSamplerHook(sampling="greedy", candidates=2, keep=3)
    with pytest.raises(ValueError, match="greedy_batches must be an integer >= 1, got 0"):
        ArchSamplerHook(sampling="greedy", greedy_batches=0)
