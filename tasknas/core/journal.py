"""The on-disk state of a search: a snapshot replaced atomically and a journal appended once per candidate.

* ``state_path`` (JSON) holds the settings, the space, the generation, the RNG state and the candidates of
  the current generation; it is replaced atomically (:func:`~tasknas.core.state.atomic_write_text`).
* ``<stem>.records.jsonl`` beside it gains one complete JSON line per scored candidate, flushed at once.

Both carry a CRC-32 of their content, so damage (a disk error, a hand edit) is found, not read as other
values. Reading never changes a byte on disk. The one expected damage — a last journal line torn by a
crash — is left out of what is read; it is cut only when the resumed search appends its next record (and
a complete last record that lost only its newline is kept and completed). Any other damage is one
``ValueError`` naming the file and the line, and the files stay exactly as they were.
"""
from __future__ import annotations

import json
import math
import os
import zlib
from pathlib import Path
from typing import Any

from .state import atomic_write_text

STATE_VERSION = 2
_SNAPSHOT_KEYS = {"version": int, "config": dict, "constraints": list, "space": dict, "generation": int,
                  "done": bool, "rng": list, "candidates": list, "num_records": int, "note": str, "checksum": str}
_RECORD_KEYS = ("arch", "score", "generation", "cost", "info", "crc")
_NONFINITE = ("nan", "inf", "-inf")


def _crc(data: dict) -> str:
    return f"{zlib.crc32(json.dumps(data).encode()):08x}"


def encode_score(score: float) -> float | str:
    """A score as JSON: a float, or ``"nan"``/``"inf"``/``"-inf"`` (JSON has no non-finite numbers)."""
    return score if math.isfinite(score) else str(score)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class SearchStore:
    """The snapshot and journal of one search (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records_path = self.path.with_name(self.path.stem + ".records.jsonl")
        self._journal = None
        self._tail: tuple[int, bool] | None = None  # (valid length, needs a newline) of a journal read back

    def exists(self) -> bool:
        return self.path.exists() or self.records_path.exists()

    # -- writing --------------------------------------------------------------------------------
    def write_snapshot(self, data: dict) -> None:
        if self._journal is not None:
            os.fsync(self._journal.fileno())
        body = {k: v for k, v in data.items() if k != "checksum"}
        atomic_write_text(self.path, json.dumps({**body, "checksum": _crc(body)}) + "\n")

    def append(self, arch: list, score: float, generation: int, cost: float | None, info: dict) -> None:
        if self._journal is None:
            self._repair_tail()
            self._journal = open(self.records_path, "a", encoding="utf-8")
        line = {"arch": arch, "score": encode_score(score), "generation": generation, "cost": cost, "info": info}
        self._journal.write(json.dumps({**line, "crc": _crc(line)}) + "\n")
        self._journal.flush()

    def _repair_tail(self) -> None:
        """Before the first append after a resume: cut a torn last line, or end a complete one with a newline."""
        if self._tail is None or not self.records_path.exists():
            return
        good, newline = self._tail
        if self.records_path.stat().st_size != good or newline:
            with open(self.records_path, "r+b") as f:
                f.truncate(good)
                if newline:
                    f.seek(good)
                    f.write(b"\n")
        self._tail = None

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    # -- reading --------------------------------------------------------------------------------
    def read(self) -> tuple[dict, list[dict]]:
        """The snapshot and the journal's records, validated; raises ``ValueError`` naming the damaged file."""
        return self.read_snapshot(), self.read_journal()

    def read_snapshot(self) -> dict:
        where = repr(str(self.path))
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read search state {where}: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"search state {where} holds a JSON {type(data).__name__}, expected an object")
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"search state {where} has version {data.get('version')!r}, expected {STATE_VERSION} "
                             "(written by another version of tasknas)")
        for key, kind in _SNAPSHOT_KEYS.items():
            if key not in data:
                raise ValueError(f"search state {where} has no {key!r} entry")
            if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
                raise ValueError(f"search state {where}: {key!r} is {data[key]!r}, expected a {kind.__name__}")
        body = {k: v for k, v in data.items() if k != "checksum"}
        if _crc(body) != data["checksum"]:
            raise ValueError(f"search state {where} is damaged (its checksum does not match its content)")
        return data

    def read_journal(self) -> list[dict]:
        self._tail = None
        if not self.records_path.exists():
            return []
        where = repr(str(self.records_path))
        try:
            raw = self.records_path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read search journal {where}: {exc}") from None
        lines = raw.splitlines(keepends=True)
        out: list[dict] = []
        good = 0
        newline = False
        for number, chunk in enumerate(lines, 1):
            last = number == len(lines)
            torn = not chunk.endswith(b"\n")  # only the last chunk can lack its newline
            try:
                out.append(self._parse(chunk))
            except ValueError as exc:
                if last and torn:
                    break  # a line torn by a crash: left out, cut before the next append
                raise ValueError(f"search journal {where} line {number}: {exc}; the file was left as it is "
                                 "(repair or remove that line to resume)") from None
            good += len(chunk)
            newline = torn
        self._tail = (good, newline)
        return out

    @staticmethod
    def _parse(chunk: bytes) -> dict:
        try:
            line = json.loads(chunk)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
        if not isinstance(line, dict) or tuple(line) != _RECORD_KEYS:
            got = list(line) if isinstance(line, dict) else type(line).__name__
            raise ValueError(f"expected an object with keys {list(_RECORD_KEYS)}, got {got}")
        crc = line.pop("crc")
        if crc != _crc(line):
            raise ValueError("damaged (its checksum does not match its content)")
        score = line["score"]
        if not (_number(score) or score in _NONFINITE) or not isinstance(line["arch"], list) \
                or not isinstance(line["generation"], int) or isinstance(line["generation"], bool) \
                or not (line["cost"] is None or _number(line["cost"])) or not isinstance(line["info"], dict):
            raise ValueError(f"a record of the wrong shape: {line!r}")
        line["score"] = float(score)
        return line
