"""Run by test_distributed.py under `torchrun --nproc_per_node=2` (gloo, CPU): supernet training, then a search;
with a third argument (``fair`` or ``greedy``, a sampling of ArchSamplerHook), training alone with that sampling."""
import json
import sys
from pathlib import Path

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from tasknas.core import EvolutionConfig, choices_of
from tasknas.plugins.openmmlab.hooks import ArchSamplerHook, unwrap
from tasknas.plugins.openmmlab.search import search
from tasknas.plugins.openmmlab.training import train
from tests.detection.conftest import SHAPES_CONFIG, tiny_config

SEARCH = dict(evolution=EvolutionConfig.preset("detnas", population=4, topk=2, mutations=1, crossovers=1,
                                                    generations=2),
           calib_images=4, progress=False)
RECORDED: list[dict] = []  # the arch of every training iteration on this rank
PATHS: list[list[dict]] = []  # every path of every training iteration on this rank
FINAL: dict = {}  # the sampler's GreedyNAS state and a slice of the weights after training


@HOOKS.register_module()
class ArchRecorder(Hook):
    priority = "LOW"  # after ArchSamplerHook has activated the iteration's arch

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        RECORDED.append({c.key: c.active for c in choices_of(unwrap(runner.model))})
        sampler = next(h for h in runner.hooks if isinstance(h, ArchSamplerHook))
        PATHS.append([p.as_dict() for p in sampler.paths])

    def after_train(self, runner):
        sampler = next(h for h in runner.hooks if isinstance(h, ArchSamplerHook))
        FINAL["pool"] = sampler.greedy.state_dict() if sampler.greedy is not None else None
        FINAL["weights"] = {k: v.detach().flatten()[:8].tolist() for k, v in unwrap(runner.model).named_parameters()
                            if k.startswith("backbone.body.stages.0.0.")}  # parameters (plain BN buffers are per rank)


def main(data_root: Path, work: Path, sampling: str | None = None) -> None:
    torch.set_num_threads(1)
    cfg = tiny_config(SHAPES_CONFIG, data_root, work / "train", iters=3)
    cfg.custom_hooks.append(dict(type="ArchRecorder"))
    if sampling is not None:
        for hook in cfg.custom_hooks:
            if hook["type"] == "ArchSamplerHook":
                hook.update(sampling=sampling, candidates=4, keep=2)
    train(cfg, work / "train")  # initialises gloo from torchrun's environment
    out = {"world": torch.distributed.get_world_size(), "archs": RECORDED, "paths": PATHS, **FINAL}
    if sampling is None:
        result = search(cfg, work / "train" / "supernet.pth", work / "search", **SEARCH)
        out["records"] = [[r.arch.as_dict(), r.score] for r in result.records]
    (work / f"rank{torch.distributed.get_rank()}.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:])
