import random

import torch

from tasknas.core import fix, is_fixed, sample, set_arch, space_of
from tests.core.nets import tiny_shufflenet


def test_fixed_subnet_gives_bit_identical_outputs_to_the_supernet_on_that_arch():
    net = tiny_shufflenet()
    x = torch.randn(4, 3, 32, 32)
    rng = random.Random(0)
    for mode in ("train", "eval"):
        for _ in range(4):
            arch = sample(space_of(net), rng)
            set_arch(net, arch)
            subnet = fix(net, arch)
            getattr(net, mode)(), getattr(subnet, mode)()
            with torch.no_grad():
                assert torch.equal(net(x), subnet(x))
                assert all(torch.equal(a, b) for a, b in zip(net.forward_features(x), subnet.forward_features(x)))


def test_fixed_subnet_holds_only_the_chosen_weights_under_readable_names():
    net = tiny_shufflenet()
    arch = sample(space_of(net), random.Random(1))
    subnet = fix(net, arch)
    assert is_fixed(subnet) and not is_fixed(net)
    chosen = arch["stage0.block1"]
    sd = subnet.state_dict()
    assert torch.equal(sd["stages.0.1.main.0.weight"],
                       net.state_dict()[f"stages.0.1.candidates.{chosen}.main.0.weight"])
    assert not any("candidates" in k for k in sd)
    assert sum(p.numel() for p in subnet.parameters()) < sum(p.numel() for p in net.parameters())


def test_fix_does_not_change_the_supernet_and_copies_weights():
    net = tiny_shufflenet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    arch = sample(space_of(net), random.Random(2))
    subnet = fix(net, arch)
    with torch.no_grad():
        for p in subnet.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert space_of(net) == space_of(tiny_shufflenet())


def test_sgd_step_with_momentum_and_weight_decay_leaves_every_weight_off_the_path_bit_identical():
    net = tiny_shufflenet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=4e-5)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 5, (4,))
    rng = random.Random(3)
    space = space_of(net)
    b = sample(space, rng)
    a = make_different(b, space, rng)
    for arch in (b, a):  # B first so that B's options hold momentum buffers and stale grads could leak
        set_arch(net, arch)
        before = {name: p.detach().clone() for name, p in net.named_parameters()}
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    moved = unmoved = 0
    for name, p in net.named_parameters():
        key_opt = _option_of(name, net)
        if key_opt is None:
            continue
        if key_opt in {(k, str(o)) for k, o in a}:
            moved += not torch.equal(before[name], p)
        else:
            assert torch.equal(before[name], p), f"{name} changed although it is not on arch A"
            unmoved += 1
    assert moved > 0 and unmoved > 0


def make_different(arch, space, rng):
    while True:
        other = sample(space, rng)
        if all(other[k] != arch[k] for k in space):
            return other


def _option_of(param_name: str, net) -> tuple[str, str] | None:
    """(choice key, option) owning ``param_name``, or None for weights outside the choices."""
    module_path, _, _ = param_name.rpartition(".")
    for name, module in net.named_modules():
        if getattr(module, "candidates", None) is not None and module_path.startswith(name + ".candidates."):
            return module.key, module_path[len(name) + len(".candidates."):].split(".")[0]
    return None


def test_nested_choices_are_found_set_and_fixed():
    from torch import nn

    from tasknas.core import Choice

    inner = Choice("inner", {"a": nn.Linear(3, 3), "b": nn.Sequential(nn.Linear(3, 3), nn.ReLU())})
    outer = Choice("outer", {"plain": nn.Linear(3, 3), "nested": nn.Sequential(inner, nn.Linear(3, 3))})
    net = nn.Sequential(nn.Linear(3, 3), outer)
    assert outer.holds_choices and not inner.holds_choices
    assert dict(space_of(net)) == {"inner": ("a", "b"), "outer": ("plain", "nested")}
    x = torch.randn(2, 3)
    for arch in ({"inner": "b", "outer": "nested"}, {"inner": "a", "outer": "plain"}):
        set_arch(net, arch)
        subnet = fix(net, arch)
        assert is_fixed(subnet) and torch.equal(net(x), subnet(x))
