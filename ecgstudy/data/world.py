"""Curating a world of corpora into the study's stores, and the checks that keep them apart.

The simulator writes one PTB-XL-format folder per corpus (``<raw>/<corpus>/``, roles in
``<raw>/world.json``) plus the rare-disease sets (``<raw>/rare/``). :func:`curate_world` makes:

- store ``foundation`` (role ``foundation``) from the foundation corpus: a seeded patient split into
  ``train`` and ``val`` only (validation of the pretraining objective), no test split;
- store ``main`` (role ``downstream``) from the downstream corpus (``strat_fold`` -> train/val/test) and
  every external corpus (split ``external``), read as one dataset;
- store ``rare`` (role ``downstream``) from the rare sets;

then checks that no patient is in two stores (:func:`check_disjoint_stores`) and writes the foundation
train split's normalisation statistics into every store (:func:`share_stats`). A real dataset with a
declared foundation source goes through :func:`foundation_config` and the same two checks
(``ecgstudy.stages.curate``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ecgstudy.data.curate_config import CurateConfig
from ecgstudy.data.curation import curate
from ecgstudy.data.normalisation import attach_stats, fit_store_stats

#: The world's description written by the simulator (corpora and their roles).
WORLD_FILE = "world.json"
#: Store names of the study.
FOUNDATION, MAIN, RARE = "foundation", "main", "rare"


def foundation_config(cfg: CurateConfig) -> CurateConfig:
    """The curate settings of a foundation corpus: patients split seeded into train / val, no test, no
    external site (nothing in it is ever evaluated)."""
    return dataclasses.replace(cfg, use_official_folds=False, test_fraction=0.0, external_sites=())


def read_world(raw_dir: str | Path) -> dict[str, Any]:
    """``<raw>/world.json``; fails naming the file when it is absent (not a simulated world)."""
    path = Path(raw_dir) / WORLD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a simulated world (write it with ecgstudy.simulate.write_world)")
    return json.loads(path.read_text())


def curate_world(
    raw_dir: str | Path,
    out_dir: str | Path,
    cfg: CurateConfig | None = None,
    seed: int = 0,
    *,
    source: str = "simulated",
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Curate a simulated world into ``<out>/foundation``, ``<out>/main`` and ``<out>/rare``.

    Returns ``{"foundation": summary, "main": summary, "rare": summary}`` (``rare`` only when the world
    has rare sets), each as :func:`ecgstudy.data.curation.curate` returns it.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    cfg = cfg or CurateConfig()
    world = read_world(raw_dir)
    by_role: dict[str, list[str]] = {}
    for corpus in world["corpora"]:
        by_role.setdefault(corpus["role"], []).append(corpus["name"])
    if len(by_role.get("foundation", [])) != 1 or len(by_role.get("downstream", [])) != 1:
        raise ValueError(f"{raw_dir / WORLD_FILE}: needs one foundation and one downstream corpus, has {by_role}")
    roots = {FOUNDATION: [raw_dir / by_role["foundation"][0]],
             MAIN: [raw_dir / name for name in by_role["downstream"] + by_role.get("external", [])]}
    if (raw_dir / RARE).is_dir():
        roots[RARE] = [raw_dir / RARE]
    check_disjoint_catalogs({name: (source, folders) for name, folders in roots.items()})  # before any signal work
    summaries = {
        FOUNDATION: curate(source, raw_dir / by_role["foundation"][0], out_dir / FOUNDATION, foundation_config(cfg),
                           seed, role="foundation", progress=progress),
        MAIN: curate(source, [raw_dir / name for name in by_role["downstream"] + by_role.get("external", [])],
                     out_dir / MAIN, cfg, seed, role="downstream", progress=progress),
    }
    stores = [out_dir / FOUNDATION, out_dir / MAIN]
    if (raw_dir / RARE).is_dir():
        summaries[RARE] = curate(source, raw_dir / RARE, out_dir / RARE, cfg, seed, role="downstream",
                                 progress=progress)
        stores.append(out_dir / RARE)
    check_disjoint_stores(stores)
    share_stats(out_dir / FOUNDATION, stores)
    return summaries


def check_disjoint_catalogs(datasets: dict[str, tuple[str, Sequence[str | Path]]]) -> None:
    """Fail before curation when a patient id is in two of ``datasets`` ({store: (reader, folders)}).

    Reads only the catalogs (no signal). Patient ids of different readers are compared as strings.
    """
    from ecgstudy.data.sources import open_source

    owner: dict[str, str] = {}
    for name, (source, folders) in datasets.items():
        patients = set()
        for folder in folders:
            patients |= set(open_source(source, folder).catalog()["patient_id"].astype(str))
        shared = sorted(p for p in patients if p in owner)
        if shared:
            raise ValueError(f"patient(s) {shared[:10]} are in store {owner[shared[0]]!r} and in store {name!r}: "
                             f"corpora must not share patients ({len(shared)} shared)")
        owner.update({p: name for p in patients})


def check_disjoint_stores(stores: Sequence[str | Path]) -> None:
    """Fail naming the stores and patients when a patient id occurs in two stores."""
    owner: dict[str, str] = {}
    for store in stores:
        name = Path(store).name
        patients = set(pd.read_parquet(Path(store) / "records.parquet", columns=["patient_id"])["patient_id"].astype(str))
        shared = sorted(p for p in patients if p in owner)
        if shared:
            raise ValueError(f"patient(s) {shared[:10]} are in store {owner[shared[0]]!r} and in store {name!r}: "
                             f"corpora must not share patients ({len(shared)} shared)")
        owner.update({p: name for p in patients})


def share_stats(fitted_on: str | Path, stores: Sequence[str | Path]) -> dict[str, Any]:
    """Fit the normalisation statistics on ``fitted_on``'s train split and write them into every store.

    Every model, pretrained or not, then sees its inputs normalised with the pretraining corpus's
    statistics (:mod:`ecgstudy.data.normalisation`). Returns the statistics.
    """
    stats = fit_store_stats(fitted_on, "train")
    for store in stores:
        attach_stats(store, stats)
    return stats


def mark_no_foundation(path: str | Path, reason: str) -> None:
    """Write ``<path>/meta.json`` saying no foundation corpus was curated (role ``none``), replacing any
    earlier store there, so the pretrain stage can refuse with a clear message (and DVC finds its output)."""
    import shutil

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps({"role": "none", "reason": reason, "n_records": 0}, indent=2) + "\n")
