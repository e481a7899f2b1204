"""The seams shared by BATS, BNAS and CP-NAS: partial channels, edge normalization, per-edge op sets that
shrink, single paths, BNAS's reduction by performance and CP-NAS's child-parent sampling, on tiny data."""
import pytest
import torch
from torch import nn

from tasknas.core import make_arch
from tasknas.plugins.binary import trainer
from tasknas.plugins.binary.bnas import OpScores, ops_to_keep, sample_paths
from tasknas.plugins.binary.config import load_config
from tasknas.plugins.binary.cpnas import child_parent_score, round_paths
from tasknas.plugins.binary.darts import MixedOp, OpSet, SearchNetwork, darts_op_set
from tasknas.plugins.binary.genotype import (
    CELL_TYPES,
    arch_to_genotype,
    arch_to_path,
    num_edges,
    path_space,
    path_to_arch,
)
from tasknas.plugins.binary.networks import arch_space
from tasknas.plugins.binary.ops import channel_shuffle
from tests.binary.test_trainer import _interrupt_after_epoch, _same, _without_seconds
from tests.binary.tiny import write_tiny


class Scale(nn.Module):
    """A test op: multiplies by a constant and records the inputs it saw."""

    def __init__(self, factor: float, stride: int):
        super().__init__()
        self.factor, self.stride, self.seen = factor, stride, []

    def forward(self, x):
        self.seen.append(x)
        return self.factor * x[:, :, ::self.stride, ::self.stride]


def _scale_op_set(factors=(2.0, 3.0, 5.0)) -> OpSet:
    ops = {f"x{f:g}": (lambda c, stride, affine, f=f: Scale(f, stride)) for f in factors}
    return OpSet(ops, preprocess=lambda c_in, c_out, affine: nn.Conv2d(c_in, c_out, 1, bias=False),
                 reduce_preprocess=lambda c_in, c_out, affine: nn.Conv2d(c_in, c_out, 1, stride=2, bias=False))


def test_partial_channels_send_exactly_one_kth_through_the_ops_and_bypass_the_rest():
    mixed = MixedOp(_scale_op_set(), 8, stride=1, partial=4)
    x = torch.randn(2, 8, 5, 5)
    w = torch.tensor([0.5, 0.3, 0.2])
    out = mixed(x, w)
    assert all(len(op.seen) == 1 and torch.equal(op.seen[0], x[:, :2]) for op in mixed.candidates)
    through = 0.5 * 2 * x[:, :2] + 0.3 * 3 * x[:, :2] + 0.2 * 5 * x[:, :2]
    assert torch.allclose(out, channel_shuffle(torch.cat([through, x[:, 2:]], 1), 4))
    # the shuffle is a permutation of the channels: every input channel lands in exactly one output channel
    index = torch.arange(8.0).view(1, 8, 1, 1)
    assert sorted(channel_shuffle(index, 4).flatten().tolist()) == list(range(8))
    assert channel_shuffle(index, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    # at stride 2 the bypassed channels are max-pooled to the ops' resolution
    reducing = MixedOp(_scale_op_set(), 8, stride=2, partial=4)
    y = torch.randn(1, 8, 6, 6)
    expected = channel_shuffle(torch.cat([sum(w[k] * f * y[:, :2, ::2, ::2] for k, f in enumerate((2, 3, 5))),
                                          nn.functional.max_pool2d(y[:, 2:], 2)], 1), 4)
    assert torch.allclose(reducing(y, w), expected)
    with pytest.raises(ValueError, match="partial channels K=3 must be >= 1 and divide the 8 channels"):
        MixedOp(_scale_op_set(), 8, stride=1, partial=3)


def _network(edge_norm: bool = True, partial: int = 1, op_set=None, seed: int = 0) -> SearchNetwork:
    return SearchNetwork(op_set or darts_op_set(), 1, 3, channels=4, layers=3, steps=2, stem_multiplier=1,
                         generator=torch.Generator().manual_seed(seed), partial=partial, edge_norm=edge_norm)


def test_edge_weights_are_a_softmax_per_node_that_scales_each_edge_in_the_sum():
    torch.manual_seed(0)
    net = _network(op_set=_scale_op_set())
    with torch.no_grad():
        net.betas["normal"].copy_(torch.tensor([0.0, 1.0, 2.0, -1.0, 0.5]))
    edges = net.edge_weights()["normal"]
    assert torch.allclose(edges[:2], torch.softmax(torch.tensor([0.0, 1.0]), 0))
    assert torch.allclose(edges[2:], torch.softmax(torch.tensor([2.0, -1.0, 0.5]), 0))
    cell = net.cells[0]
    s0, s1 = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    weights = net.arch_weights()["normal"]
    h = [cell.pre0(s0), cell.pre1(s1)]
    n0 = sum(edges[j] * cell.edges[j](h[j], weights[j]) for j in range(2))
    n1 = sum(edges[2 + j] * cell.edges[2 + j](hj, weights[2 + j]) for j, hj in enumerate(h + [n0]))
    got = cell(s0, s1, weights, None, edges)
    assert torch.allclose(got, torch.cat([n0, n1], 1), atol=1e-6)
    assert not torch.allclose(got, cell(s0, s1, weights))  # without edge weights: the plain sum


def test_edge_weights_enter_the_genotype():
    net = _network()
    with torch.no_grad():
        for kind in CELL_TYPES:
            net.alphas[kind].zero_()
            net.alphas[kind][:, 4] = 1.0  # sep_conv_3x3 strongest, equally, on every edge
        net.betas["normal"].copy_(torch.tensor([0.0, 0.0, -3.0, 2.0, 1.0]))
    scores = net.edge_scores()["normal"]
    assert torch.allclose(scores, net.arch_weights()["normal"] * net.edge_weights()["normal"].unsqueeze(1))
    # node 1 keeps its two heaviest edges (inputs 1 and 2), not the first two that a plain tie would keep
    assert [source for _, source in net.genotype().normal] == [0, 1, 1, 2]
    net.edge_norm = False
    assert [source for _, source in net.genotype().normal] == [0, 1, 0, 1]


def test_removed_ops_get_no_weight_never_run_and_are_never_sampled():
    torch.manual_seed(0)
    net = _network(edge_norm=False, op_set=_scale_op_set((2.0, 3.0, 5.0, 7.0)))
    mask = net.op_mask("normal")
    mask[0, 1] = mask[3, 0] = mask[3, 2] = False
    assert net.remaining("normal", 3) == [1, 3] and net.remaining("normal", 0) == [0, 2, 3]
    weights = net.arch_weights()["normal"]
    assert weights[0, 1] == 0 and weights[3, 0] == weights[3, 2] == 0
    assert torch.allclose(weights.sum(1), torch.ones(num_edges(2)))
    net(torch.randn(2, 1, 8, 8))
    normal_cells = [c for c in net.cells if not c.reduction]
    for cell in normal_cells:
        assert [len(op.seen) for op in cell.edges[0].candidates] == [1, 0, 1, 1]
        assert [len(op.seen) for op in cell.edges[3].candidates] == [0, 1, 0, 1]
    for path in sample_paths(net, 200, torch.Generator().manual_seed(0)):
        assert path["normal"][0] != 1 and path["normal"][3] in (1, 3)
    state = net.state_dict()  # the masks travel with the weights
    assert torch.equal(state["mask_normal"], mask)
    fresh = _network(edge_norm=False, op_set=_scale_op_set((2.0, 3.0, 5.0, 7.0)))
    fresh.load_state_dict(state)
    assert fresh.remaining("normal", 3) == [1, 3]


def test_a_single_path_is_a_core_arch_and_runs_one_op_per_edge():
    torch.manual_seed(0)
    net = _network(edge_norm=False, op_set=_scale_op_set())
    path = {"normal": [0, 1, 2, 0, 1], "reduce": [2, 2, 1, 0, 0]}
    arch = path_to_arch(path, net.op_names, 2)
    assert arch == make_arch(path_space(net.op_names, 2), arch.as_dict()) and arch["normal.edge2"] == "x5"
    assert arch_to_path(arch, net.op_names, 2) == path
    out = net(torch.randn(2, 1, 8, 8), path=path)
    for cell in net.cells:
        chosen = path["reduce" if cell.reduction else "normal"]
        assert [[len(op.seen) for op in edge.candidates] for edge in cell.edges] == [
            [int(k == c) for k in range(3)] for c in chosen]
    assert out.shape == (2, 3)
    net.op_mask("normal")[1, 1] = False
    with pytest.raises(ValueError, match=r"path op 1 on normal edge 1 is not among its remaining ops \[0, 2\]"):
        net(torch.randn(2, 1, 8, 8), path=path)


def test_bnas_keeps_the_better_half_then_drops_the_worst_op():
    assert ops_to_keep([0, 1, 2, 3, 4, 5, 6, 7], {k: v for k, v in enumerate([5, 1, 7, 3, 3, 0, 6, 2])},
                       first=True) == [0, 2, 3, 6]  # 3 and 4 tie: the earlier op stays
    assert ops_to_keep([0, 2, 3, 6], {0: 0.5, 2: 0.9, 3: 0.1, 6: 0.4}, first=False) == [0, 2, 6]
    assert ops_to_keep([4], {4: 0.0}, first=False) == [4]
    # 'none' (index 0 here) never stays alone on an edge: the best other op stays instead
    assert ops_to_keep([0, 5], {0: 0.9, 5: 0.1}, first=False, zero=0) == [5]
    assert ops_to_keep([0, 5, 6], {0: 0.9, 5: 0.1, 6: 0.2}, first=False, zero=0) == [0, 6]
    scores = OpScores({"normal": torch.zeros(1, 3, dtype=torch.float64), "reduce": torch.zeros(1, 3)},
                      {"normal": torch.zeros(1, 3, dtype=torch.long), "reduce": torch.zeros(1, 3, dtype=torch.long)})
    for k, acc in ((0, 0.5), (0, 0.7), (1, 0.8)):
        scores.credit({"normal": [k], "reduce": [0]}, acc)
    mean = scores.values("normal", 0)
    assert mean[0] == pytest.approx(0.6) and mean[1] == pytest.approx(0.8) and mean[2] == float("inf")
    ucb = scores.values("normal", 0, "ucb", c=1.0)  # mean + sqrt(2 ln N / n), N = 3 samples on the edge
    assert ucb[0] == pytest.approx(0.6 + (2 * torch.log(torch.tensor(3.0)).item() / 2) ** 0.5)


def _bnas(tmp_path):
    return load_config(write_tiny(tmp_path, model={"op_set": "darts", "binary_preprocess": False},
                                  search={"algorithm": "bnas", "stages": [["weights", 5]], "partial_channels": 2,
                                          "edge_norm": True, "arch_warmup_epochs": 1, "steps_per_epoch": 1,
                                          "reduction": {"samples": 3, "eval_batches": 1}}))


def test_bnas_shrinks_every_edge_8_4_3_2_1_and_resumes_bit_identical_mid_reduction(tmp_path, monkeypatch):
    cfg = _bnas(tmp_path)
    whole = trainer.run_search(cfg, tmp_path / "whole")
    assert [h["alpha_trained"] for h in whole["history"]] == [False, True, True, True, True]
    assert "removed" not in whole["history"][0]  # no reduction while alpha is frozen
    # replay the removals: each epoch's removed ops were among those left, and never come back
    left = {kind: [set(whole["op_weights"][kind][0]) for _ in range(num_edges(2))] for kind in CELL_TYPES}
    for entry, size in zip(whole["history"][1:], (4, 3, 2, 1)):
        for kind in CELL_TYPES:
            for edge, gone in enumerate(entry["removed"][kind]):
                assert set(gone) <= left[kind][edge]
                left[kind][edge] -= set(gone)
                assert len(left[kind][edge]) == size
    assert left == {kind: [set(ops) for ops in whole["remaining_ops"][kind]] for kind in CELL_TYPES}
    assert all(ops != ["none"] for kind in CELL_TYPES for ops in whole["remaining_ops"][kind])
    for kind in CELL_TYPES:  # removed ops weigh nothing, and the genotype takes each input's one op
        for edge, ops in enumerate(whole["op_weights"][kind]):
            assert all(w == 0 for name, w in ops.items() if name not in left[kind][edge])
        _genotype_uses_remaining_ops(cfg, whole, kind)
    # killed after the first reduction (8 -> 4), resumed: bit-identical
    _interrupt_after_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        trainer.run_search(cfg, tmp_path / "parts")
    monkeypatch.undo()
    resumed = trainer.run_search(cfg, tmp_path / "parts", resume=True)
    assert _without_seconds(resumed["history"]) == _without_seconds(whole["history"])
    a = torch.load(tmp_path / "whole" / trainer.SEARCH_CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "parts" / trainer.SEARCH_CHECKPOINT, weights_only=True)
    assert _same(a["driver"], b["driver"]) and resumed["genotype"] == whole["genotype"]


def _genotype_uses_remaining_ops(cfg, summary: dict, kind: str) -> None:
    """Each node input of the genotype comes with the one op left on that edge."""
    genotype = arch_to_genotype(make_arch(arch_space(cfg.model), summary["arch"]), 2)
    offsets = [0, 2]  # node 0's edges start at 0, node 1's at 2
    assert [op for op, _ in genotype.cell(kind)] == [summary["remaining_ops"][kind][offsets[n // 2] + source][0]
                                                     for n, (_, source) in enumerate(genotype.cell(kind))]


def test_cpnas_round_uses_every_remaining_op_of_every_edge_exactly_once():
    remaining = {"normal": [[0, 3, 5], [1, 2, 7], [2, 4, 6]], "reduce": [[0, 1, 2], [5, 6, 7], [0, 4, 7]]}
    paths = round_paths(remaining, torch.Generator().manual_seed(0))
    assert len(paths) == 3
    for kind in CELL_TYPES:
        for edge, ops in enumerate(remaining[kind]):
            assert sorted(path[kind][edge] for path in paths) == ops
    orders = {tuple(p["normal"][0] for p in round_paths(remaining, torch.Generator().manual_seed(s)))
              for s in range(20)}
    assert len(orders) > 1  # the order is random, the coverage is not
    with pytest.raises(ValueError, match=r"same number of remaining ops, got \[2, 3\]"):
        round_paths({"normal": [[0, 1], [0, 1, 2]], "reduce": [[0, 1]]}, torch.Generator())


def test_child_parent_score():
    assert child_parent_score(0.9, 0.6, 1.0) == pytest.approx(0.9)
    assert child_parent_score(0.9, 0.6, 0.0) == pytest.approx(0.6)  # beta = 0: the child's accuracy alone
    assert child_parent_score(0.9, 0.6, 1.5) == pytest.approx(1.5 * 0.3 + 0.6)


def _cpnas(tmp_path, beta: float = 1.5):
    return load_config(write_tiny(
        tmp_path, data={"batch_size": 4}, model={"op_set": "darts", "binary_preprocess": False},
        search={"algorithm": "cpnas", "stages": [["weights_activations", 8]], "arch_warmup_epochs": 1,
                "cpnas": {"beta": beta, "eval_batches": 1}}))


def test_cpnas_samples_35_architectures_scores_z_and_removes_the_worst_op_per_round(tmp_path, monkeypatch):
    cfg = _cpnas(tmp_path)
    whole = trainer.run_search(cfg, tmp_path / "whole")
    samples = whole["samples"]
    assert len(samples) == 8 + 7 + 6 + 5 + 4 + 3 + 2 == 35 and whole["rounds"] == 7
    assert [h["phase"] for h in whole["history"]] == ["warm-up"] + ["round"] * 7
    for s in samples:
        assert s["z"] == pytest.approx(1.5 * (s["parent_acc"] - s["child_acc"]) + s["child_acc"]) and s["beta"] == 1.5
    assert all(len(ops) == 1 and ops != ["none"] for kind in CELL_TYPES for ops in whole["remaining_ops"][kind])
    for entry in whole["history"][1:]:  # one op removed per edge and round, never one removed before
        assert all(len(gone) == num_edges(2) for gone in entry["removed"].values())
    gone = {(kind, e, entry["removed"][kind][e]) for entry in whole["history"][1:] for kind in CELL_TYPES
            for e in range(num_edges(2))}
    assert len(gone) == 7 * 2 * num_edges(2)
    for kind in CELL_TYPES:
        _genotype_uses_remaining_ops(cfg, whole, kind)
    # killed in the middle of the rounds, resumed: bit-identical
    _interrupt_after_epoch(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        trainer.run_search(cfg, tmp_path / "parts")
    monkeypatch.undo()
    resumed = trainer.run_search(cfg, tmp_path / "parts", resume=True)
    assert _without_seconds(resumed["history"]) == _without_seconds(whole["history"])
    assert resumed["samples"] == samples
    a = torch.load(tmp_path / "whole" / trainer.SEARCH_CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "parts" / trainer.SEARCH_CHECKPOINT, weights_only=True)
    assert _same(a["driver"], b["driver"])

