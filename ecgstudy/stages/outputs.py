"""Where a stage writes, and how: metrics JSON, figures, plot tables, model files.

Layout (all under the repository root, all DVC outputs):

- ``reports/metrics/<stage>.json``  small metrics file, committed, read by ``dvc metrics``
- ``reports/figures/<stage>/*.png`` figures (one producer per figure)
- ``reports/plots/<stage>/*.csv``   tables for ``dvc plots`` (curves)
- ``reports/tables/<stage>/*.csv``  result tables assembled into the report
- ``models/<stage>/``               checkpoints
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgstudy.paths import repo_root


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

    def figure(self, name: str) -> Path:
        """Path of figure ``name`` (``.png`` added when no suffix is given)."""
        return self.figures / (name if Path(name).suffix else f"{name}.png")

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """Write the stage's metrics JSON (numbers rounded to 4 decimals, keys sorted)."""
        self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        self.metrics_file.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n")
        return self.metrics_file


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
