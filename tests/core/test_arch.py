import json
import random

import pytest
from torch import nn

from tasknas.core import Arch, Choice, active_arch, load_arch, make_arch, sample, save_arch, set_arch, space_of
from tests.core.nets import TwoPath, tiny_shufflenet


def test_space_of_lists_keys_sorted_with_options_in_declared_order():
    space = space_of(TwoPath())
    assert list(space) == ["body", "head"]
    assert space["body"] == ("c3", "c5") and space["head"] == ("a", "b")
    assert space.size() == 4


def test_space_keys_do_not_depend_on_wrapping_the_supernet():
    net = tiny_shufflenet()
    wrapped = nn.Sequential(nn.Identity(), nn.ModuleDict({"backbone": net}))
    assert space_of(wrapped) == space_of(net)


def test_arch_is_canonical_and_hashable_whatever_the_input_order():
    space = space_of(TwoPath())
    a = make_arch(space, {"head": "b", "body": "c5"})
    b = make_arch(space, [("body", "c5"), ("head", "b")])
    assert a == b and hash(a) == hash(b) and tuple(a) == (("body", "c5"), ("head", "b"))
    assert {a: 1}[b] == 1 and a["head"] == "b"


def test_arch_round_trips_through_flat_json(tmp_path):
    space = space_of(tiny_shufflenet())
    arch = sample(space, random.Random(3))
    text = arch.to_json()
    assert json.loads(text) == arch.as_dict()
    assert Arch.from_json(text, space) == arch
    save_arch(tmp_path / "a.json", arch)
    assert load_arch(tmp_path / "a.json", space) == arch


@pytest.mark.parametrize("bad, message", [
    ({"body": "c7", "head": "a"}, "arch key 'body' has option 'c7'; allowed options are ['c3', 'c5']"),
    ({"body": "c3"}, "missing key(s) ['head']"),
    ({"body": "c3", "head": "a", "neck": "x"}, "key(s) ['neck'] that are not in the space"),
])
def test_make_arch_names_the_bad_key_or_value_and_the_allowed_set(bad, message):
    with pytest.raises(ValueError) as info:
        make_arch(space_of(TwoPath()), bad)
    assert message in str(info.value)


def test_load_arch_rejects_non_object_json_and_missing_files(tmp_path):
    space = space_of(TwoPath())
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="flat object"):
        load_arch(tmp_path / "list.json", space)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_arch(tmp_path / "nope.json", space)


def test_set_arch_activates_every_choice_and_active_arch_reads_it_back():
    net = TwoPath()
    arch = set_arch(net, {"body": "c5", "head": "a"})
    assert net.body.active == "c5" and net.head.active == "a"
    assert active_arch(net) == arch


def test_choice_without_active_option_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="'body' has no active option"):
        TwoPath()(__import__("torch").zeros(1, 3, 4, 4))


def test_choice_rejects_duplicate_and_non_scalar_options():
    with pytest.raises(ValueError, match="duplicate"):
        Choice("x", ["a", "a"])
    with pytest.raises(TypeError, match="must be a str or int"):
        Choice("x", [1.5])
    with pytest.raises(TypeError, match="must be a str or int"):
        Choice("x", [True, False])


def test_shared_keys_need_identical_options():
    net = nn.ModuleList([Choice("k", ["a", "b"]), Choice("k", ["a", "c"])])
    with pytest.raises(ValueError, match="share key 'k'"):
        space_of(net)
    same = nn.ModuleList([Choice("k", ["a", "b"]), Choice("k", ["a", "b"])])
    set_arch(same, {"k": "b"})
    assert [c.active for c in same] == ["b", "b"]
