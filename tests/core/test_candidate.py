import io

import torch

from tasknas.core import ProgressBar, score_candidate
from tests.core.test_bn import BNPath, _batches


def test_score_candidate_activates_recalibrates_evaluates_in_eval_mode_and_restores_flags():
    net = BNPath().train()
    seen = {}

    def evaluate(model):
        seen["training"] = [m.training for m in model.modules()]
        seen["active"] = model.pick.active
        return 0.75

    assert score_candidate(net, {"pick": "b"}, _batches(3), evaluate) == 0.75
    assert seen["active"] == "b" and not any(seen["training"])
    assert all(m.training for m in net.modules())
    assert int(net.pick.candidates["b"].num_batches_tracked) == 3
    assert int(net.pick.candidates["a"].num_batches_tracked) == 0
    assert torch.isfinite(net.after.running_var).all()


def test_progress_bar_prints_lines_off_a_terminal_and_always_the_last():
    stream = io.StringIO()
    bar = ProgressBar(5, "search", stream=stream, min_interval=3600)
    for i in range(1, 6):
        bar.update(i, f"best {i}")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("search [") and "1/5" in lines[0] and "5/5" in lines[1]
    assert lines[1].endswith("best 5")
