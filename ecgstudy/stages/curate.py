"""Curate stage: from raw ECGs to the curated stores, with the tables and figure that check the data.

With ``data.source: simulated`` the built-in cohort is first written to ``<data.curated>/raw``
(:func:`ecgstudy.simulate.write_cohort`: PTB-XL layout plus the simulator's ground truth) and curated with
its rare-disease case-control sets (:func:`ecgstudy.data.curation.curate_cohort`: ``main`` and ``rare``
stores). A real dataset (``ptbxl``, ``cinc``, ...) is curated in place from ``data.root`` into ``main``,
and its rare-disease sets are drawn from that store (:func:`ecgstudy.data.rare_sets.build_rare_store`;
table ``rare_sets.csv``: what was built or skipped, and why).

Outputs (``dvc.yaml`` stage ``curate``; layout of :mod:`ecgstudy.stages.outputs`):

- ``<data.curated>/main`` (and ``rare``; ``raw`` when simulated): the curated stores (docs/architecture.md,
  "Curated store"): signals (N, 12, T) float32 mV at ``curate.fs`` Hz, T = ``fs * duration_s`` samples;
- ``reports/tables/curate/``: ``exclusions_<store>.csv``, ``splits_by_site.csv``, ``prevalence_by_site.csv``,
  ``intervals_by_condition.csv`` (per condition: neurokit2 on lead II, the global 12-lead measurer and,
  for simulated data, the intended values; :func:`ecgstudy.data.measure.interval_table`) and, for a real
  dataset, ``rare_sets.csv``;
- ``reports/figures/curate/ecg_per_condition.png``: one 12-lead ECG per condition (25 mm/s, 10 mm/mV);
- ``reports/metrics/curate.json`` (:func:`ecgstudy.data.describe.curation_metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from ecgstudy.data import curation, describe, measure, rare_sets
from ecgstudy.data.store import Store
from ecgstudy.paths import resolve
from ecgstudy.plots import ecg as ecg_plots
from ecgstudy.stages.outputs import StageOutputs, stage_outputs

#: Records measured per condition for the interval table (a seeded sample when there are more).
INTERVALS_PER_CODE = 20
#: Panels per row of the per-condition ECG gallery.
GALLERY_COLUMNS = 3


@dataclass
class CurateResult:
    """What the curate stage produced (for the notebook to display).

    Attributes
    ----------
    store : the curated main store (signals (N, 12, T) at ``store.fs`` Hz).
    summaries : {"main": curation summary, "rare": summary} (a real dataset's ``rare`` summary is
        :func:`ecgstudy.data.rare_sets.build_rare_store`'s, one entry per configured set).
    exclusions : {store name: kept / excluded-by-reason table} (``exclusions_<name>.csv``).
    splits : records and patients per split, indexed by site (``splits_by_site.csv``).
    prevalence : reported-label prevalence (%) by site (``prevalence_by_site.csv``).
    intervals : intervals measured by condition (``intervals_by_condition.csv``).
    rare_table : the rare-set table of a real dataset (``rare_sets.csv``); None for the simulated cohort.
    metrics : the content of ``reports/metrics/curate.json``.
    figures : {name: PNG path} of the figures written (``ecg_per_condition``).
    """

    store: Store
    summaries: dict[str, dict[str, Any]]
    exclusions: dict[str, pd.DataFrame]
    splits: pd.DataFrame
    prevalence: pd.DataFrame
    intervals: pd.DataFrame
    rare_table: pd.DataFrame | None
    metrics: dict[str, Any]
    figures: dict[str, Path] = field(default_factory=dict)


def curate_source(cfg: SimpleNamespace, curated: Path, root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Curate the configured source into ``curated``: ``main`` and (when there are sets) ``rare``.

    Simulated: write the cohort to ``<curated>/raw`` (overwriting it), then curate it with its rare sets.
    Real: curate ``data.root`` (resolved from ``root``) into ``<curated>/main``, then draw the rare sets from
    it into ``<curated>/rare``. Returns {"main": summary, "rare": summary} as the curation functions do.
    """
    if cfg.data.source == "simulated":
        from ecgstudy.simulate import write_cohort

        raw = write_cohort(cfg.simulate, curated / "raw", seed=cfg.seed, overwrite=True)
        return curation.curate_cohort(raw, curated, cfg.curate, seed=cfg.seed)
    summaries = {"main": curation.curate(cfg.data.source, resolve(cfg.data.root, root), curated / "main", cfg.curate,
                                         seed=cfg.seed)}
    summaries["rare"] = rare_sets.build_rare_store(curated / "main", curated / "rare", cfg.curate.rare_sets,
                                                   seed=cfg.seed)
    return summaries


def run(cfg: SimpleNamespace, root: Path | None = None) -> CurateResult:
    """Curate the source, describe the main store, write every table, the gallery and the metrics JSON.

    Parameters
    ----------
    cfg : ``ecgstudy.config.stage_config("curate", params)``: ``seed``, ``data``, ``simulate``, ``curate``.
    root : repository root the paths resolve from (default :func:`ecgstudy.paths.repo_root`).
    """
    out = stage_outputs("curate", root)
    curated = resolve(cfg.data.curated, root)
    summaries = curate_source(cfg, curated, root)
    real = cfg.data.source != "simulated"
    store = Store(curated / "main")
    codes = describe.gallery_codes(store)
    result = CurateResult(
        store=store,
        summaries=summaries,
        exclusions={name: curation.summary_table(summary) for name, summary in summaries.items()},
        splits=describe.split_table(store),
        prevalence=describe.prevalence_table(store, by="site"),
        intervals=measure.interval_table(store, codes, n_per_code=INTERVALS_PER_CODE, seed=cfg.seed),
        rare_table=rare_sets.set_table(summaries["rare"]) if real else None,
        metrics={},
    )
    result.metrics = describe.curation_metrics(store, summaries, result.intervals)
    write_tables(result, out)
    result.figures["ecg_per_condition"] = draw_gallery(store, codes, out.figure("ecg_per_condition"))
    out.write_metrics(result.metrics)
    return result


def write_tables(result: CurateResult, out: StageOutputs) -> None:
    """Write the stage's CSV tables under ``out.tables`` (file names as in the module docstring)."""
    if result.rare_table is not None:
        result.rare_table.to_csv(out.tables / "rare_sets.csv", index=False)
    for name, table in result.exclusions.items():
        table.to_csv(out.tables / f"exclusions_{name}.csv", index=False)
    result.splits.to_csv(out.tables / "splits_by_site.csv")
    result.prevalence.to_csv(out.tables / "prevalence_by_site.csv")
    result.intervals.to_csv(out.tables / "intervals_by_condition.csv")


def draw_gallery(store: Store, codes: list[str], path: Path) -> Path:
    """One 12-lead ECG per condition of ``codes`` (:func:`ecgstudy.data.describe.example_per_condition`:
    a test-split record where it is the only abnormal finding), drawn at 25 mm/s and 10 mm/mV to ``path``."""
    examples = describe.example_per_condition(store, codes)
    info = store.meta["label_info"]
    return ecg_plots.plot_gallery(
        [store.signals[i] for i in examples.values()],
        store.fs,
        [f"{code}: {info[code]['description']}" for code in examples],
        path,
        ncols=GALLERY_COLUMNS,
    )
