"""Model scores saved by a training stage and read by the evaluation stage.

Training stages (pretrain's probe comparison, finetune, transfer) save every model's probabilities on the
records they are evaluated on, with the targets and patient ids of those records; the ``evaluate`` stage
computes every interval and comparison from them. So a statistics setting (bootstrap size, interval
level) reruns the statistics, never the training. One ``.npz`` file, readable with numpy alone:

- ``y/<group>``: (N, L) 0/1 targets of a group of records (a split such as ``test``, or a rare condition);
- ``patients/<group>``: (N,) patient ids of those records (str);
- ``labels/<group>``: (L,) label names;
- ``meta``: one JSON string of plain facts about the scores (task, protocol, ...);
- ``scores/<k1>/<k2>/.../<group>``: (N, L) probabilities of one model (keys name the model, e.g.
  strategy and label fraction), in the dtype the model produced them (the statistics are bit-identical
  to scoring in memory). The last model key is the training repeat, ``r<k>`` (k = 0..R-1): the R
  trainings of one arm (same settings, seed and label draw k) are found with :meth:`ScoreFile.repeats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import json
import re
from typing import Any

import numpy as np

_SEP = "/"
_REPEAT = re.compile(r"r(\d+)")


@dataclass
class ScoreFile:
    """Targets, patients, labels per group and scores per (model keys..., group)."""

    y: dict[str, np.ndarray] = field(default_factory=dict)
    patients: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def add_group(self, group: str, y: np.ndarray, patients: np.ndarray, labels: list[str]) -> None:
        """Register a group of records: targets (N, L), patient ids (N,), label names (L)."""
        y = np.asarray(y)
        if y.ndim != 2 or y.shape[0] != len(patients) or y.shape[1] != len(labels):
            raise ValueError(f"group {group!r}: targets {y.shape} do not match {len(patients)} patients x "
                             f"{len(labels)} labels")
        self.y[group], self.patients[group] = y, np.asarray(patients).astype(str)
        self.labels[group] = list(labels)

    def add(self, key: tuple[str, ...], group: str, scores: np.ndarray) -> None:
        """Scores (N, L) of the model named by ``key`` on ``group``'s records."""
        if group not in self.y:
            raise KeyError(f"unknown group {group!r}; add_group first")
        scores = np.asarray(scores)
        if scores.shape != self.y[group].shape:
            raise ValueError(f"scores {scores.shape} of {key} on {group!r} do not match targets {self.y[group].shape}")
        if any(_SEP in k for k in (*key, group)):
            raise ValueError(f"keys may not contain {_SEP!r}: {key}, {group!r}")
        self.scores[(*key, group)] = scores

    def merge(self, other: ScoreFile) -> None:
        """Add ``other``'s groups and scores (one job's part of a stage; ``meta`` is the caller's to merge).

        A group or a score key present in both is an error: parts must not overlap."""
        clash = sorted(set(self.y) & set(other.y)) + [k for k in other.scores if k in self.scores]
        if clash:
            raise ValueError(f"merging score files: {clash[:5]} already present")
        for group in other.y:
            self.add_group(group, other.y[group], other.patients[group], other.labels[group])
        for key, value in other.scores.items():
            self.add(key[:-1], key[-1], value)

    def get(self, *key: str) -> np.ndarray:
        """Scores of (model keys..., group)."""
        return self.scores[tuple(key)]

    def repeats(self, group: str) -> dict[tuple[str, ...], list[np.ndarray]]:
        """The scores (N, L) on ``group`` of every arm, its repeats in order: ``{arm keys: [r0, r1, ...]}``.

        Raises
        ------
        ValueError
            A model key without a final ``r<k>``, or an arm whose repeats are not exactly r0..r{R-1}
            (named with the keys found).
        """
        found: dict[tuple[str, ...], dict[int, np.ndarray]] = {}
        for (*model, grp), value in self.scores.items():
            if grp != group:
                continue
            match = _REPEAT.fullmatch(model[-1]) if model else None
            if match is None:
                raise ValueError(f"score key {(*model, grp)} does not end with a repeat id r<k>")
            found.setdefault(tuple(model[:-1]), {})[int(match.group(1))] = value
        out = {}
        for arm, by_repeat in found.items():
            if sorted(by_repeat) != list(range(len(by_repeat))):
                raise ValueError(f"arm {arm} on {group!r}: repeats {sorted(f'r{k}' for k in by_repeat)} are not "
                                 f"r0..r{len(by_repeat) - 1}")
            out[arm] = [by_repeat[k] for k in range(len(by_repeat))]
        return out

    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` (no pickled objects)."""
        arrays: dict[str, np.ndarray] = {"meta": np.asarray(json.dumps(self.meta, sort_keys=True))}
        for group in self.y:
            arrays[f"y{_SEP}{group}"] = self.y[group]
            arrays[f"patients{_SEP}{group}"] = self.patients[group]
            arrays[f"labels{_SEP}{group}"] = np.asarray(self.labels[group], dtype=str)
        for key, value in self.scores.items():
            arrays[_SEP.join(("scores", *key))] = value
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ScoreFile:
        """Read a file written by :meth:`save` (fails naming the file when it is not one)."""
        out = cls()
        try:
            with np.load(path, allow_pickle=False) as data:
                items = {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a score file written by ecgstudy.engine.scores: {exc}") from exc
        for name, value in items.items():
            kind, *rest = name.split(_SEP)
            if kind == "meta":
                out.meta = json.loads(str(value))
            elif kind == "y":
                out.y[rest[0]] = value
            elif kind == "patients":
                out.patients[rest[0]] = value
            elif kind == "labels":
                out.labels[rest[0]] = value.tolist()
            elif kind == "scores":
                out.scores[tuple(rest)] = value
            else:
                raise ValueError(f"{path}: unexpected array {name!r}")
        return out
