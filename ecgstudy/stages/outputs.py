"""Where a stage writes, and how: metrics JSON, figures, plot tables, model files, timings.

Layout (all under the repository root; all DVC outputs except the timings):

- ``reports/metrics/<stage>.json``  small metrics file, committed, read by ``dvc metrics``
- ``reports/figures/<stage>/*.png`` figures (one producer per figure)
- ``reports/plots/<stage>/*.csv``   tables for ``dvc plots`` (curves)
- ``reports/tables/<stage>/*.csv``  result tables assembled into the report
- ``models/<stage>/``               checkpoints
- ``reports/timings/<stage>.json``  wall-clock times of the last run: untracked (gitignored, no DVC output,
  no stage reads it), so a faithful rerun leaves every DVC output, ``git status`` and ``dvc metrics diff``
  unchanged. Results never carry timing columns (:data:`TIMING_COLUMNS`, :func:`without_timings`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.paths import repo_root

#: Wall-clock columns and keys (per-epoch ``seconds`` / ``samples_per_s`` of the training history, a model's
#: ``train_seconds``, a run's ``seconds``): they differ between two runs of the same study, so they go to the
#: timings file, never into a DVC output.
TIMING_COLUMNS = ("seconds", "samples_per_s", "train_seconds", "train_samples_per_s")


@dataclass(frozen=True)
class StageOutputs:
    """Output folders of one stage (created on construction via :func:`stage_outputs`)."""

    stage: str
    root: Path

    @property
    def metrics_file(self) -> Path:
        return self.root / "reports" / "metrics" / f"{self.stage}.json"

    @property
    def figures(self) -> Path:
        return self.root / "reports" / "figures" / self.stage

    @property
    def plots(self) -> Path:
        return self.root / "reports" / "plots" / self.stage

    @property
    def tables(self) -> Path:
        return self.root / "reports" / "tables" / self.stage

    @property
    def models(self) -> Path:
        return self.root / "models" / self.stage

    @property
    def timings_file(self) -> Path:
        return self.root / "reports" / "timings" / f"{self.stage}.json"

    def figure(self, name: str) -> Path:
        """Path of figure ``name`` (``.png`` added when no suffix is given)."""
        return self.figures / (name if Path(name).suffix else f"{name}.png")

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """Write the stage's metrics JSON (numbers rounded to 4 decimals, keys sorted)."""
        self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        self.metrics_file.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n")
        return self.metrics_file

    def write_timings(self, timings: dict[str, Any]) -> Path:
        """Write the stage's wall-clock times (``reports/timings/<stage>.json``: untracked, read by no stage)."""
        self.timings_file.parent.mkdir(parents=True, exist_ok=True)
        self.timings_file.write_text(json.dumps(_jsonable(timings), indent=2, sort_keys=True) + "\n")
        return self.timings_file


def without_timings(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without its wall-clock columns (:data:`TIMING_COLUMNS`): what a DVC-tracked table may hold."""
    return frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame.columns])


def timing_rows(frame: pd.DataFrame, keys: list[str]) -> list[dict[str, Any]]:
    """One record per distinct ``keys`` with ``frame``'s wall-clock columns, for :meth:`StageOutputs.write_timings`."""
    columns = [c for c in TIMING_COLUMNS if c in frame.columns]
    return frame[list(keys) + columns].drop_duplicates(subset=list(keys)).to_dict("records")


def stage_outputs(
    stage: str, root: Path | None = None, models: bool = False, plots: bool = False, figures: bool = True
) -> StageOutputs:
    """Create and return the output folders of ``stage``.

    Tables and the metrics folder always exist afterwards; ``reports/figures/<stage>`` unless
    ``figures=False``; ``models/<stage>`` and ``reports/plots/<stage>`` only when asked for (they are DVC
    outputs of some stages only).
    """
    out = StageOutputs(stage, root or repo_root())
    folders = [out.tables, out.metrics_file.parent] + ([out.figures] if figures else [])
    folders += [out.models] if models else []
    folders += [out.plots] if plots else []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else round(value, 4)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value
