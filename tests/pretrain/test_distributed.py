"""Pre-training under two gloo ranks: the same paths on every rank, the same network at the end."""
import json

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.pretrain.tiny import tiny_config

SAMPLERS = ("uniform", "greedy")  # greedy: paths scored on rank 0 only, then broadcast


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        from tasknas.pretrain.trainer import pretrain

        for sampler in SAMPLERS:
            cfg = tiny_config(train={"epochs": 1}, sampler={"type": sampler, "candidates": 3, "keep": 2,
                                                            "greedy_images": 16, "greedy_batch": 8})
            seen = []
            final = {}

            def record(epoch, step, paths, model):
                seen.append([a.to_json(indent=None) for a in paths])
                final.update({k: v.detach().clone() for k, v in model.state_dict().items()})

            summary = pretrain(cfg, f"{out_dir}/{sampler}", on_step=record)
            torch.save(final, f"{out_dir}/{sampler}-state{rank}.pt")
            with open(f"{out_dir}/{sampler}-rank{rank}.json", "w") as f:
                json.dump({"paths": seen, "world": summary["world_size"]}, f)
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_train_the_same_paths_and_end_with_the_same_network(tmp_path):
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    for sampler in SAMPLERS:
        r0, r1 = (json.loads((tmp_path / f"{sampler}-rank{i}.json").read_text()) for i in range(2))
        assert r0["world"] == r1["world"] == 2
        # 64 training images (48 beside the GreedyNAS batches), global batch 16
        assert r0["paths"] == r1["paths"] and len(r0["paths"]) == (3 if sampler == "greedy" else 4)
        assert len({p for step in r0["paths"] for p in step}) > 1
        s0, s1 = (torch.load(tmp_path / f"{sampler}-state{i}.pt", weights_only=True) for i in range(2))
        # parameters after the last step; BN statistics are averaged at the end of the epoch (the checkpoint's)
        params = [k for k in s0 if "running" not in k and "num_batches" not in k]
        assert all(torch.equal(s0[k], s1[k]) for k in params)
        saved = torch.load(tmp_path / sampler / "pretrain.ckpt", weights_only=True)["model"]
        assert all(torch.equal(saved[k], s0[k]) for k in params)
        running = [k for k in s0 if "running_mean" in k or "running_var" in k]
        assert any(not torch.equal(s0[k], s1[k]) for k in running)  # each rank saw its own half of the batches
        for k in running:
            torch.testing.assert_close(saved[k], (s0[k] + s1[k]) / 2, rtol=0, atol=1e-6)
