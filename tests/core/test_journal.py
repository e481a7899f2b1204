"""The search state on disk: damage is found and named, never repaired by deleting records; kill -9 resumes."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasknas.core import EvolutionConfig, evolve, load_arch, load_result, sample, save_arch
from tests.core.test_evolution import SPACE, crash_at, planted, summary

CONFIG = EvolutionConfig(strategy="predictor", budget=30, population=6, batch=6, seed=7)


@pytest.fixture()
def interrupted(tmp_path):
    """A search state interrupted after 17 scored candidates (journal of 17 lines, snapshot of an earlier point)."""
    state = tmp_path / "s.json"
    with pytest.raises(KeyboardInterrupt):
        evolve(SPACE, crash_at(18), CONFIG, state_path=state)
    return state, tmp_path / "s.records.jsonl"


def _bytes(*paths):
    return [p.read_bytes() if p.exists() else None for p in paths]


def test_a_damaged_line_in_the_middle_is_one_error_naming_the_line_and_nothing_on_disk_changes(interrupted):
    state, journal = interrupted
    lines = journal.read_bytes().splitlines(keepends=True)
    assert len(lines) == 17
    lines[8] = lines[8].replace(b'"generation"', b'"generatoin"')
    journal.write_bytes(b"".join(lines))
    before = _bytes(state, journal)
    with pytest.raises(ValueError, match=rf"search journal '{journal}' line 9: expected an object with keys .*left as "
                                         "it is"):
        evolve(SPACE, planted, CONFIG, state_path=state, resume=True)
    with pytest.raises(ValueError, match="line 9"):
        load_result(state, SPACE)
    assert _bytes(state, journal) == before


@pytest.mark.parametrize("damage", ["flip", "blank", "garbage"])
def test_any_damage_but_a_torn_last_line_is_refused_with_the_files_untouched(interrupted, damage):
    state, journal = interrupted
    raw = bytearray(journal.read_bytes())
    if damage == "flip":  # a digit of a score changes: still valid JSON, caught by the line's checksum
        i = raw.index(b'"score": ') + 11
        raw[i] = ord("7") if raw[i] != ord("7") else ord("3")
        expected = r"line 1: damaged \(its checksum does not match"
    elif damage == "blank":
        raw[:0] = b"\n"
        expected = r"line 1: not valid JSON"
    else:
        cut = raw.index(b"\n") + 1
        raw[cut:cut] = b"\x00\xff{]\n"
        expected = r"line 2: not valid JSON"
    journal.write_bytes(bytes(raw))
    before = _bytes(state, journal)
    with pytest.raises(ValueError, match=expected):
        evolve(SPACE, planted, CONFIG, state_path=state, resume=True)
    assert _bytes(state, journal) == before


def test_a_torn_last_line_is_left_out_on_read_and_cut_only_when_the_search_goes_on(interrupted, tmp_path):
    state, journal = interrupted
    full = evolve(SPACE, planted, CONFIG)
    with open(journal, "ab") as f:
        f.write(b'{"arch": ["k3", "k5"')
    before = _bytes(state, journal)
    assert len(load_result(state, SPACE).records) == 17
    assert _bytes(state, journal) == before  # reading changes nothing
    resumed = evolve(SPACE, planted, CONFIG, state_path=state, resume=True)
    assert summary(resumed) == summary(full)
    assert all(json.loads(line) for line in journal.read_text().splitlines())


@pytest.mark.parametrize("content, expected", [
    ("[1, 2]", r"holds a JSON list, expected an object"),
    ('{"version": 2}', r"has no 'config' entry"),
    ("{not json", r"cannot read search state"),
    ("", r"cannot read search state"),
    ('{"version": 1}', r"has version 1, expected 2"),
])
def test_a_state_file_of_the_wrong_shape_is_one_clear_error(interrupted, content, expected):
    state, journal = interrupted
    state.write_text(content)
    before = _bytes(state, journal)
    for call in (lambda: evolve(SPACE, planted, CONFIG, state_path=state, resume=True),
                 lambda: load_result(state, SPACE)):
        with pytest.raises(ValueError, match=rf"search state '{state}' .*{expected}|{expected} .*'{state}'"):
            call()
    assert _bytes(state, journal) == before


def test_a_hand_edited_state_is_refused_by_its_checksum_and_wrong_types_are_named(interrupted):
    state, journal = interrupted
    data = json.loads(state.read_text())
    state.write_text(json.dumps({**data, "generation": data["generation"] + 1}))
    with pytest.raises(ValueError, match="is damaged \\(its checksum does not match"):
        evolve(SPACE, planted, CONFIG, state_path=state, resume=True)
    state.write_text(json.dumps({**data, "rng": "seed"}))
    with pytest.raises(ValueError, match="'rng' is 'seed', expected a list"):
        load_result(state, SPACE)


def test_a_journal_from_another_search_is_refused(interrupted, tmp_path):
    state, journal = interrupted
    other = tmp_path / "other.json"
    with pytest.raises(KeyboardInterrupt):
        evolve(SPACE, crash_at(25), EvolutionConfig(strategy="predictor", budget=30, population=6, seed=8),
               state_path=other)
    journal.write_bytes((tmp_path / "other.records.jsonl").read_bytes())
    with pytest.raises(ValueError, match="do not belong together|scores .* a second time|is not a candidate"):
        evolve(SPACE, planted, CONFIG, state_path=state, resume=True)


def test_resume_with_nothing_saved_starts_afresh_and_a_lone_journal_is_an_error(tmp_path, caplog):
    state = tmp_path / "s.json"
    result = evolve(SPACE, planted, CONFIG, state_path=state, resume=True)
    assert summary(result) == summary(evolve(SPACE, planted, CONFIG))
    assert "starting a new search" in caplog.text
    state.unlink()
    with pytest.raises(ValueError, match="the journal .* exists but the search state .* does not"):
        evolve(SPACE, planted, CONFIG, state_path=state, resume=True)


def _damage(raw: bytes, kind: str, where: float, value: int) -> bytes:
    """``raw`` truncated, with one bit flipped, one byte inserted or one deleted at the relative position ``where``."""
    out = bytearray(raw)
    i = min(int(where * len(out)), len(out) - 1)
    if kind == "truncate":
        del out[i:]
    elif kind == "flip":
        out[i] ^= 1 << (value % 8)
    elif kind == "insert":
        out[i:i] = bytes([value])
    else:
        del out[i]
    return bytes(out)


DAMAGE = dict(kind=st.sampled_from(["truncate", "flip", "insert", "delete"]), where=st.floats(0, 1),
              value=st.integers(0, 255))


def test_random_corruptions_load_the_same_records_or_fail_clearly_and_never_change_the_files(interrupted):
    """A property over random damage (hypothesis, derandomized for CI): truncations, bit flips, inserted and deleted
    bytes in the state or the journal either read back the same records (a torn last journal line left out) or are
    refused with an error naming the file, and no file on disk changes."""
    state, journal = interrupted
    good_state, good_journal = state.read_bytes(), journal.read_bytes()
    reference = summary(load_result(state, SPACE))[0]
    outcomes = {"same": 0, "prefix": 0, "refused": 0}

    @settings(max_examples=80, deadline=None, database=None, derandomize=True)
    @given(in_journal=st.booleans(), **DAMAGE)
    def check(in_journal, kind, where, value):
        target = journal if in_journal else state
        state.write_bytes(good_state)
        journal.write_bytes(good_journal)
        target.write_bytes(_damage(good_journal if in_journal else good_state, kind, where, value))
        before = _bytes(state, journal)
        try:
            got = summary(load_result(state, SPACE))[0]
        except ValueError as exc:
            assert str(state) in str(exc) or str(journal) in str(exc), exc
            outcomes["refused"] += 1
        else:
            # only a torn (truncated) last journal line may be left out; anything else reads back unchanged
            assert got == reference[:len(got)]
            assert len(got) == len(reference) or (in_journal and kind == "truncate")
            outcomes["same" if got == reference else "prefix"] += 1
        assert _bytes(state, journal) == before, f"{kind} at {where:.3f} changed a file"

    check()
    assert outcomes["refused"] > 20 and outcomes["prefix"] > 0, outcomes  # both paths taken


def test_random_corruptions_of_an_arch_file_load_the_same_arch_or_fail_naming_the_file(tmp_path):
    """The same property for arch JSON files: the same arch, or one ValueError naming the file; the file unchanged."""
    arch = sample(SPACE, random.Random(3))
    path = tmp_path / "best.arch.json"
    save_arch(path, arch)
    good = path.read_bytes()
    outcomes = {"same": 0, "refused": 0}

    @settings(max_examples=120, deadline=None, database=None, derandomize=True)
    @given(**DAMAGE)
    def check(kind, where, value):
        damaged = _damage(good, kind, where, value)
        path.write_bytes(damaged)
        try:
            got = load_arch(path, SPACE)
        except ValueError as exc:
            assert str(path) in str(exc), exc
            outcomes["refused"] += 1
        else:
            assert got == arch
            outcomes["same"] += 1
        assert path.read_bytes() == damaged

    check()
    assert outcomes["refused"] > 20 and outcomes["same"] > 0, outcomes  # whitespace damage reads back the same


KILLED_SEARCH = """
import sys, time
sys.path.insert(0, {root!r})
from tests.core.test_evolution import SPACE, planted
from tests.core.test_journal import CONFIG
from tasknas.core import evolve

def score(arch):
    time.sleep(0.02)
    return planted(arch)

evolve(SPACE, score, CONFIG, state_path={state!r}, resume=True)
"""


def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_result(tmp_path):
    root = str(Path(__file__).resolve().parents[2])
    state = tmp_path / "s.json"
    journal = tmp_path / "s.records.jsonl"
    full = evolve(SPACE, planted, CONFIG)
    rng = random.Random(1)
    kills = 0
    for _ in range(3):
        scored = len(journal.read_bytes().splitlines()) if journal.exists() else 0
        target = scored + rng.randint(2, 6)
        proc = subprocess.Popen([sys.executable, "-c", KILLED_SEARCH.format(root=root, state=str(state))],
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if journal.exists() and len(journal.read_bytes().splitlines()) >= target:
                time.sleep(rng.random() * 0.02)  # somewhere inside the next candidate or its write
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
        if proc.returncode == 0:
            break
    assert kills >= 2
    resumed = evolve(SPACE, planted, CONFIG, state_path=state, resume=True)
    assert summary(resumed) == summary(full)
    assert len(journal.read_text().splitlines()) == len(full.records)  # no candidate lost or scored twice
