"""Curate stage: from raw ECGs to the curated stores, with the tables and figure that check the data.

With ``data.source: simulated`` the built-in world is first written to ``<data.curated>/raw``
(:func:`ecgstudy.simulate.write_world`: one PTB-XL-format folder per corpus plus the simulator's ground
truth) and curated (:func:`ecgstudy.data.world.curate_world`): store ``foundation`` (the pretraining
corpus), ``main`` (downstream train/val/test + the external hospital as split ``external``) and ``rare``.
A real dataset (``ptbxl``, ``cinc``, ...) is curated in place from ``data.root`` into ``main``, its
rare-disease sets are drawn from that store (:func:`ecgstudy.data.rare_sets.build_rare_store`; table
``rare_sets.csv``: what was built or skipped, and why), and its declared pretraining corpus
(``data.foundation``) into ``foundation``; without one, ``foundation/meta.json`` says so (role ``none``)
and the pretrain stage refuses to run, saying how to declare one. Every store gets the foundation
train split's normalisation statistics (:mod:`ecgstudy.data.normalisation`).

Outputs (``dvc.yaml`` stage ``curate``; layout of :mod:`ecgstudy.stages.outputs`):

- ``<data.curated>/{foundation,main,rare}`` (``raw`` when simulated): the curated stores
  (docs/architecture.md, "Curated store"): signals (N, 12, T) float32 mV at ``curate.fs`` Hz, T = ``fs *
  duration_s`` samples;
- ``reports/tables/curate/``: ``exclusions_<store>.csv``, ``splits_by_site.csv``, ``prevalence_by_site.csv``
  (every store, corpus and site), ``site_separability.csv``, ``intervals_by_condition.csv`` (per condition: neurokit2 on lead II, the
  global 12-lead measurer and, for simulated data, the intended values;
  :func:`ecgstudy.data.measure.interval_table`), ``demographics_readability.csv`` (how well age and sex
  are read from standard measurements of the main store's records,
  :func:`ecgstudy.data.demographics.readability_table`) and, for a real dataset, ``rare_sets.csv``;
- ``reports/figures/curate/ecg_per_condition.png``: one 12-lead ECG per condition (25 mm/s, 10 mm/mV);
- ``reports/metrics/curate.json`` (:func:`ecgstudy.data.describe.curation_metrics`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.data import curation, demographics, describe, measure, rare_sets, site_shift, world
from ecgstudy.data.store import Store
from ecgstudy.engine import resample
from ecgstudy.engine.multiplicity import percentile_interval
from ecgstudy.paths import resolve
from ecgstudy.plots import ecg as ecg_plots
from ecgstudy.stages.outputs import StageOutputs, stage_outputs

#: Records measured per condition for the interval table (a seeded sample when there are more).
INTERVALS_PER_CODE = 20
#: Panels per row of the per-condition ECG gallery.
GALLERY_COLUMNS = 3
#: Records per store the site classifier is cross-validated on (a seeded sample spread over sites).
SEPARABILITY_RECORDS = 2000
#: Records of the main store measured to ask how well age and sex can be read (a seeded sample).
DEMOGRAPHICS_RECORDS = 1000


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
    prevalence : reported-label prevalence (%) by store, corpus and site (``prevalence_by_site.csv``).
    separability : site classifier's balanced accuracy per store, corpus classifier across stores
        (``site_separability.csv``, :func:`ecgstudy.data.site_shift.separability_table`).
    intervals : intervals measured by condition (``intervals_by_condition.csv``).
    demographics : sex AUROC and age MAE of linear models on measured features, per feature set
        (``demographics_readability.csv``, :func:`ecgstudy.data.demographics.readability_table`).
    rare_table : the rare-set table of a real dataset (``rare_sets.csv``); None for the simulated cohort.
    metrics : the content of ``reports/metrics/curate.json``.
    figures : {name: PNG path} of the figures written (``ecg_per_condition``).
    """

    store: Store
    summaries: dict[str, dict[str, Any]]
    exclusions: dict[str, pd.DataFrame]
    splits: pd.DataFrame
    prevalence: pd.DataFrame
    separability: pd.DataFrame
    intervals: pd.DataFrame
    demographics: pd.DataFrame
    rare_table: pd.DataFrame | None
    metrics: dict[str, Any]
    figures: dict[str, Path] = field(default_factory=dict)


def curate_source(cfg: SimpleNamespace, curated: Path, root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Curate the configured source into ``curated``: ``foundation``, ``main`` and (when there are sets) ``rare``.

    Simulated: write the world to ``<curated>/raw`` (overwriting it), then curate it
    (:func:`ecgstudy.data.world.curate_world`). Real: curate ``data.root`` (resolved from ``root``) into
    ``<curated>/main``, draw the rare sets from it into ``<curated>/rare``, curate ``data.foundation`` into
    ``<curated>/foundation`` (or mark it absent), check that no foundation patient id is in main or rare
    (which share patients: the sets are drawn from main) and share the foundation's normalisation
    statistics. Returns {store: summary} as the curation functions do.
    """
    if cfg.data.source == "simulated":
        from ecgstudy.simulate import write_world

        raw = write_world(cfg.simulate, curated / "raw", seed=cfg.seed, overwrite=True)
        return world.curate_world(raw, curated, cfg.curate, seed=cfg.seed)
    found = cfg.data.foundation
    same_ids = found is not None and found.source == cfg.data.source  # other readers' ids are other id spaces
    if same_ids:  # one dataset family split in two (e.g. two MIMIC folders): no patient may be in both
        world.check_disjoint_catalogs({"foundation": (found.source, [resolve(found.root, root)]),
                                       "main": (cfg.data.source, [resolve(cfg.data.root, root)])})
    summaries = {"main": curation.curate(cfg.data.source, resolve(cfg.data.root, root), curated / "main", cfg.curate,
                                         seed=cfg.seed)}
    summaries["rare"] = rare_sets.build_rare_store(curated / "main", curated / "rare", cfg.curate.rare_sets,
                                                   seed=cfg.seed)
    stores = [curated / "main"] + ([curated / "rare"] if (curated / "rare" / "meta.json").is_file() else [])
    if found is None:
        world.mark_no_foundation(curated / "foundation", "data.foundation is null")
        return summaries
    summaries["foundation"] = curation.curate(found.source, resolve(found.root, root), curated / "foundation",
                                              world.foundation_config(cfg.curate), seed=cfg.seed, role="foundation")
    if same_ids:  # the rare sets are drawn from main's patients: only the foundation corpus must be apart
        for store in stores:
            world.check_disjoint_stores([curated / "foundation", store])
    world.share_stats(curated / "foundation", [curated / "foundation", *stores])
    return summaries


def open_stores(curated: Path) -> dict[str, Store]:
    """The curated stores that hold records, by name (``foundation`` only when a corpus was curated)."""
    out = {}
    for name in ("foundation", "main", "rare"):
        meta = curated / name / "meta.json"
        if meta.is_file() and json.loads(meta.read_text()).get("role") != "none":
            out[name] = Store(curated / name)
    return out


def run(cfg: SimpleNamespace, root: Path | None = None) -> CurateResult:
    """Curate the source, describe the stores, write every table, the gallery and the metrics JSON.

    Parameters
    ----------
    cfg : ``ecgstudy.config.stage_config("curate", params)``: ``seed``, ``data``, ``simulate``, ``curate``.
    root : repository root the paths resolve from (default :func:`ecgstudy.paths.repo_root`).
    """
    out = stage_outputs("curate", root)
    curated = resolve(cfg.data.curated, root)
    summaries = curate_source(cfg, curated, root)
    real = cfg.data.source != "simulated"
    stores = open_stores(curated)
    store = stores["main"]
    codes = describe.gallery_codes(store)
    result = CurateResult(
        store=store,
        summaries=summaries,
        exclusions={name: curation.summary_table(summary) for name, summary in summaries.items()},
        splits=describe.split_table(store),
        prevalence=describe.prevalence_by_store(stores),
        separability=site_shift.separability_table(stores, seed=cfg.seed, max_records=SEPARABILITY_RECORDS),
        intervals=measure.interval_table(store, codes, n_per_code=INTERVALS_PER_CODE, seed=cfg.seed),
        demographics=demographics_with_intervals(
            *demographics.readability_table(stores, seed=cfg.seed, max_records=DEMOGRAPHICS_RECORDS), seed=cfg.seed),
        rare_table=rare_sets.set_table(summaries["rare"]) if real else None,
        metrics={},
    )
    result.metrics = describe.curation_metrics(store, summaries, result.intervals)
    result.metrics["site_separability"] = {
        f"{row.store}_{row.grouping}": {"balanced_accuracy": row.balanced_accuracy, "chance": row.chance,
                                        "n_sites": int(row.n_sites)}
        for row in result.separability.itertuples()
    }
    result.metrics["demographics_readability"] = {
        "_".join([row["store"], *([] if row["records"] == demographics.SUBSETS[0] else [row["records"]]), row["features"]]):
            {k: v for k, v in row.items() if k not in ("store", "records", "features")}
        for row in result.demographics.to_dict("records")
    }
    result.metrics["stores"] = {name: {"role": s.role, "records": len(s), "patients": int(s.records["patient_id"].nunique()),
                                       "splits": {k: int(v) for k, v in s.records["split"].value_counts().sort_index().items()}}
                                for name, s in stores.items()}
    result.metrics["normalisation_fitted_on"] = (store.normalisation_stats or {}).get("fitted_on")
    write_tables(result, out)
    result.figures["ecg_per_condition"] = draw_gallery(store, codes, out.figure("ecg_per_condition"))
    out.write_metrics(result.metrics)
    return result


def demographics_with_intervals(table: pd.DataFrame, predictions: pd.DataFrame, *, seed: int, n_boot: int = 1000,
                                level: float = 0.95) -> pd.DataFrame:
    """``table`` (:func:`ecgstudy.data.demographics.readability_table`) with percentile intervals at ``level``
    for sex AUROC and age MAE, over ``n_boot`` patient-bootstrap resamples of the out-of-fold ``predictions``
    (the fits are not repeated: the interval is over the patients scored)."""
    out = table.copy()
    for col in ("sex_auroc_low", "sex_auroc_high", "age_mae_low", "age_mae_high"):
        out[col] = float("nan")
    for i, row in out.iterrows():
        p = predictions[(predictions["store"] == row["store"]) & (predictions["records"] == row["records"])
                        & (predictions["features"] == row["features"])]
        w = resample.patient_weights(p["patient_id"].to_numpy(), n_boot,
                                     resample.seed_for(seed, "demographics", str(row["store"]), str(row["records"])))
        mae = resample.weighted_means(np.abs(p["pred_age"].to_numpy() - p["age"].to_numpy()), w)
        out.loc[i, ["age_mae_low", "age_mae_high"]] = percentile_interval(mae, level)
        scored = np.isfinite(p["pred_sex"].to_numpy())
        if len(np.unique(p["sex"].to_numpy()[scored])) == 2:
            auroc = resample.weighted_metrics(p["sex"].to_numpy()[scored], p["pred_sex"].to_numpy()[scored], w[scored])
            out.loc[i, ["sex_auroc_low", "sex_auroc_high"]] = percentile_interval(auroc["auroc"], level)
    return out[[name for c in demographics.COLUMNS
                for name in ((c, f"{c}_low", f"{c}_high") if c in ("sex_auroc", "age_mae") else (c,))]]


def write_tables(result: CurateResult, out: StageOutputs) -> None:
    """Write the stage's CSV tables under ``out.tables`` (file names as in the module docstring)."""
    if result.rare_table is not None:
        result.rare_table.to_csv(out.tables / "rare_sets.csv", index=False)
    for name, table in result.exclusions.items():
        table.to_csv(out.tables / f"exclusions_{name}.csv", index=False)
    result.splits.to_csv(out.tables / "splits_by_site.csv")
    result.prevalence.to_csv(out.tables / "prevalence_by_site.csv")
    result.separability.to_csv(out.tables / "site_separability.csv", index=False)
    result.intervals.to_csv(out.tables / "intervals_by_condition.csv")
    result.demographics.to_csv(out.tables / "demographics_readability.csv", index=False)


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
