"""Equal tuning for every arm: a small stated search, chosen on validation data only, and training repeats.

The study compares arms (pretrained vs scratch, linear probe vs random-init probe, foundation vs scratch).
A comparison is fair only when every arm gets the same search with the same budget, chosen on data the
evaluation never sees. This module holds the pieces the training stages share:

- :func:`repeat_seed`: the seed of training repeat k (label-subsample draw and training seed), shared by
  every arm so arms pair by repeat;
- :class:`Search`: one hyper-parameter's grid, the validation score of each value and the choice (the
  first best value in grid order: ties never depend on anything but the grid); :meth:`Search.record`
  is the plain record that outputs and score-file metadata carry;
- :func:`patient_folds` and :func:`cv_probe_weight_decay`: inner cross-validation over patients, for
  a linear probe's weight decay where there is no validation split (rare-disease transfer) or where the
  validation split is the one being reported (the pretraining probe comparison);
- :func:`stopped_at_last_epoch`: whether a run's best validation epoch was its last one (it may not have
  converged).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ecgstudy.engine import evaluate
from ecgstudy.engine.train import FitResult, TrainConfig


def repeat_seed(seed: int, repeat: int) -> int:
    """Seed of training repeat ``repeat`` (0, 1, ...): ``seed + repeat``.

    Every arm of a comparison uses the same repeat seed for its label-subsample draw and its training, so
    repeat k of one arm pairs with repeat k of another.
    """
    if repeat < 0:
        raise ValueError(f"repeat must be >= 0, got {repeat}")
    return int(seed) + int(repeat)


@dataclass
class Search:
    """One hyper-parameter's grid search: ``scores[i]`` is the selection score of ``grid[i]`` (higher is
    better; NaN = not scoreable, never chosen unless every value is NaN, then the first)."""

    param: str  # e.g. "lr", "weight_decay"
    grid: list[float]
    selection: str  # how a value was scored, in words (e.g. "best-epoch validation macro AUROC, repeat 0")
    scores: list[float] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)  # per value: best epoch, stopped flag, ...

    def add(self, score: float, **detail: Any) -> None:
        """Record the score of the next grid value (in grid order)."""
        if len(self.scores) >= len(self.grid):
            raise ValueError(f"search over {self.param}: more scores than the {len(self.grid)} grid values")
        self.scores.append(float(score))
        self.details.append(dict(detail))

    @property
    def best_index(self) -> int:
        """Position of the chosen value: the highest score, the first one in grid order on ties."""
        if len(self.scores) != len(self.grid):
            raise ValueError(f"search over {self.param}: {len(self.scores)} scores for {len(self.grid)} grid values")
        values = np.asarray(self.scores, dtype=float)
        if np.isnan(values).all():
            return 0
        return int(np.nanargmax(values))  # nanargmax returns the first maximum

    @property
    def chosen(self) -> float:
        return self.grid[self.best_index]

    def record(self) -> dict[str, Any]:
        """Plain description (JSON-able) of the search and its choice."""
        return {"param": self.param, "grid": list(self.grid), "scores": [_plain(s) for s in self.scores],
                "chosen": self.chosen, "selection": self.selection,
                "details": [{k: _plain(v) for k, v in d.items()} for d in self.details]}


def _plain(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def stopped_at_last_epoch(fitted: FitResult) -> bool:
    """True when the kept (best validation) epoch is the last epoch trained and training ran its whole
    schedule: the model may still have been improving (not converged)."""
    if fitted.history.empty:
        return False
    return (not fitted.stopped_early) and int(fitted.best_epoch) == int(fitted.history["epoch"].max())


def patient_folds(groups: np.ndarray, positive: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """``k`` folds of row positions with whole patients per fold, positives spread over the folds.

    Parameters
    ----------
    groups
        (N,) patient id of each row.
    positive
        (N,) bool: the row is a case (for multi-label targets: has any positive). A patient with any
        positive row is dealt first, round-robin over a seeded permutation, then the other patients, so
        each fold gets about 1/k of the case patients.
    """
    groups, positive = np.asarray(groups).astype(str), np.asarray(positive, dtype=bool)
    if k < 2:
        raise ValueError(f"cross-validation needs k >= 2 folds, got {k}")
    patients = np.unique(groups)
    if len(patients) < k:
        raise ValueError(f"{len(patients)} patients cannot fill {k} cross-validation folds")
    case = {p for p in np.unique(groups[positive])}
    rng = np.random.default_rng(seed)
    ordered = [*rng.permutation(sorted(case)), *rng.permutation(sorted(set(patients) - case))]
    fold_of = {p: i % k for i, p in enumerate(ordered)}
    folds = np.asarray([fold_of[g] for g in groups])
    return [np.flatnonzero(folds == i) for i in range(k)]


def cv_probe_weight_decay(
    z: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    cfg: TrainConfig,
    grid: list[float],
    *,
    seed: int,
    folds: int = 3,
    pos_weight: torch.Tensor | None = None,
) -> Search:
    """Choose a linear probe's weight decay by ``folds``-fold cross-validation over patients.

    ``z`` (N, D) are frozen features of the training records, ``y`` (N, L) their targets and ``groups``
    (N,) their patient ids. Every value of ``grid`` trains a probe (:func:`ecgstudy.engine.probes.train_probe`
    with ``cfg``, weight decay replaced) on k-1 folds and scores macro AUROC on the held-out fold (labels
    without both classes in a fold are left out of that fold's macro); the score of a value is the mean
    over folds. Only training records are read: nothing of a validation or test split.
    """
    from ecgstudy.engine.probes import train_probe  # probes builds on train; tuning sits beside it

    z, y = np.asarray(z, dtype=np.float32), np.asarray(y, dtype=np.float32)
    parts = patient_folds(groups, y.any(axis=1), folds, seed)
    search = Search("weight_decay", list(grid), f"mean macro AUROC over {folds} patient folds of the training records")
    for wd in grid:
        fold_scores = []
        for i, held in enumerate(parts):
            fit_rows = np.setdiff1d(np.arange(len(z)), held)
            model, _ = train_probe(None, z[fit_rows], y[fit_rows], None, None, dataclasses.replace(cfg, weight_decay=wd),
                                   seed=seed + i, pos_weight=pos_weight)
            with torch.no_grad():
                logits = model(torch.as_tensor(z[held])).numpy()
            fold_scores.append(evaluate.macro_fast(y[held], logits, "auroc") if evaluate.evaluable(y[held]).any()
                               else float("nan"))
        score = float(np.nanmean(fold_scores)) if not np.isnan(fold_scores).all() else float("nan")
        search.add(score, folds=[_plain(s) for s in fold_scores])
    return search
