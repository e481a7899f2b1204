"""Two CPU ranks over gloo: same arch everywhere, BN statistics all-reduced, sharded evolution."""
import json
import random

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tasknas.core import STRATEGIES, EvolutionConfig, broadcast_arch, evolve, recalibrate_bn, sample, set_arch, space_of
from tests.core.nets import tiny_shufflenet
from tests.core.test_bn import BNPath
from tests.core.test_evolution import SPACE, cost, planted

# batch 4: the candidates of a generation are what the ranks share (evolution and random read population)
CONFIGS = {name: EvolutionConfig(strategy=name, budget=26, population=8, batch=4, seed=11)
           for name in sorted(STRATEGIES)}


def _calibration(rank):
    g = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(4, 3, 6, 6, generator=g) * (rank + 1) + rank for _ in range(2 + rank)]  # 2 and 3 batches


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        out = {}
        # 1. every rank draws its own arch, then all use rank 0's
        net = tiny_shufflenet()
        space = space_of(net)
        mine = sample(space, random.Random(rank))
        synced = broadcast_arch(mine if rank == 0 else None, space)
        set_arch(net, synced)
        out["mine"] = mine.to_json()
        out["synced"] = synced.to_json()
        # 2. BN recalibration with statistics combined over ranks
        bn_net = BNPath()
        set_arch(bn_net, {"pick": "a"})
        recalibrate_bn(bn_net, _calibration(rank))
        bn = bn_net.pick.candidates["a"]
        out["bn"] = [bn.running_mean.tolist(), bn.running_var.tolist(), int(bn.num_batches_tracked)]
        recalibrate_bn(bn_net, _calibration(rank), sync=False)  # this rank's batches only
        out["bn_local"] = [bn.running_mean.tolist(), int(bn.num_batches_tracked)]
        # 3. sharded search, every strategy
        for name, config in CONFIGS.items():
            calls = []
            result = evolve(SPACE, lambda a: calls.append(a) or planted(a), config, cost=cost,
                            state_path=f"{out_dir}/{name}.json")
            out[name] = {"records": [[list(map(list, r.arch)), r.score, r.index] for r in result.records],
                         "calls": len(calls)}
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(out, f)
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_share_archs_bn_statistics_and_search_results(tmp_path):
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2))
    # same arch on every rank (and it is rank 0's, although rank 1 drew another one)
    assert r0["mine"] != r1["mine"] and r0["synced"] == r1["synced"] == r0["mine"]
    # BN statistics = average of the per-batch statistics of all 5 batches of both ranks
    batches = _calibration(0) + _calibration(1)
    mean = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    var = torch.stack([b.var((0, 2, 3)) for b in batches]).mean(0)
    for r in (r0, r1):
        torch.testing.assert_close(torch.tensor(r["bn"][0]), mean, rtol=0, atol=1e-5)
        torch.testing.assert_close(torch.tensor(r["bn"][1]), var, rtol=0, atol=1e-4)
        assert r["bn"][2] == 5
    for rank, r in enumerate((r0, r1)):
        local = torch.stack([b.mean((0, 2, 3)) for b in _calibration(rank)]).mean(0)
        torch.testing.assert_close(torch.tensor(r["bn_local"][0]), local, rtol=0, atol=1e-5)
        assert r["bn_local"][1] == 2 + rank
    # sharded search = single-process search, each rank scoring about half of the candidates
    for name, config in CONFIGS.items():
        single = evolve(SPACE, planted, config, cost=cost)
        expected = [[list(map(list, r.arch)), r.score, r.index] for r in single.records]
        assert r0[name]["records"] == r1[name]["records"] == expected, name
        assert r0[name]["calls"] + r1[name]["calls"] == len(expected) == 26
        assert abs(r0[name]["calls"] - r1[name]["calls"]) <= 3
        # one state on disk (rank 0's), holding every candidate of both ranks
        assert len((tmp_path / f"{name}.records.jsonl").read_text().splitlines()) == len(expected)
