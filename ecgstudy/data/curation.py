"""Curation: read a dataset, harmonise, quality-check, split by patient, write the curated store.

:func:`curate` streams records from a reader (:mod:`ecgstudy.data.sources`) through worker processes in
chunks, in catalog order, and writes each kept record into a memory-mapped ``signals.npy``: memory
stays flat whatever the number of records. Everything is written into a temporary sibling folder
that is renamed to ``out_dir`` only once complete (:mod:`ecgstudy.data.store_writer`), so an
interrupted or failed curation never leaves a complete-looking store (and a rerun cleans up after
it). Per-record work lives in :mod:`ecgstudy.data.pipeline`. The store layout is the curated-store
contract of docs/architecture.md and :mod:`ecgstudy.data.store` reads it.

The simulated world's layout (several corpora) is curated by :func:`ecgstudy.data.world.curate_world`
into the stores ``foundation``, ``main`` and ``rare``. A real dataset has no rare sets of its own:
:func:`ecgstudy.data.rare_sets.build_rare_store` draws them from its curated main store (``rare_sets``
settings).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ecgstudy.progress import tqdm  # widget bar in JupyterLab, plain text under papermill and CI

from ecgstudy import __version__
from ecgstudy.data import labels as lab, preprocess
from ecgstudy.data.curate_config import CurateConfig
from ecgstudy.data.normalisation import fit_store_stats
from ecgstudy.data.pipeline import process_in_order
from ecgstudy.data.sources import Source, open_source
from ecgstudy.data.splits import assign_splits, check_patient_integrity
from ecgstudy.data.store_writer import SignalWriter, atomic_folder

log = logging.getLogger(__name__)

#: Store format version written to meta.json.
STORE_VERSION = 1
#: Store roles (meta.json ``role``): only a ``foundation`` store may be pretrained on.
ROLES: tuple[str, ...] = ("foundation", "downstream")
#: ``fitted_on`` of the normalisation statistics a store fits on its own train split.
SELF = "this store"


# ----------------------------------------------------------------------------------------------
# Writing the store


def _write_masks(source: Source, kept: pd.DataFrame, out: Path, duration_s: float) -> int:
    """Copy signature masks of kept records, times shifted to the stored window. Returns rows written."""
    masks = source.signature_masks()
    if masks is None:
        return -1
    offsets = kept.set_index("record_id")["offset_s"]
    masks = masks[masks["record_id"].isin(offsets.index)].copy()
    shift = masks["record_id"].map(offsets).to_numpy(dtype=float)
    if np.any(shift != 0):
        masks["start_s"] = np.clip(masks["start_s"].to_numpy(float) - shift, 0.0, duration_s)
        masks["end_s"] = np.clip(masks["end_s"].to_numpy(float) - shift, 0.0, duration_s)
        masks = masks[masks["end_s"] > masks["start_s"]]
    masks.reset_index(drop=True).to_parquet(out / "signature_masks.parquet", index=False)
    return len(masks)


def open_reader(source: str, root: str | Path | list, cfg: CurateConfig) -> Source:
    """The reader of ``root`` (a folder, or a list of folders read as one: :class:`CombinedSource`)."""
    if isinstance(root, (list, tuple)):
        from ecgstudy.data.sources.combined import CombinedSource

        return CombinedSource([open_source(source, r, target_fs=cfg.fs, resolution=cfg.resolution) for r in root])
    return open_source(source, root, target_fs=cfg.fs, resolution=cfg.resolution)


def curate(
    source: str,
    root: str | Path | list,
    out_dir: str | Path,
    cfg: CurateConfig | None = None,
    seed: int = 0,
    *,
    role: str = "downstream",
    progress: bool = True,
) -> dict[str, Any]:
    """Curate dataset ``root`` (format ``source``) into the store ``out_dir``.

    Parameters
    ----------
    source : reader name (:data:`ecgstudy.data.sources.READERS`: ``ptbxl``, ``simulated``, ``cinc``, ``code15``,
        ``mimic``, ``wfdb``); also the store's ``source`` column
    root : raw dataset folder (never modified), or a list of folders curated into one store (their
        record and patient ids must not overlap; catalog column ``corpus`` names each record's folder)
    out_dir : store folder; replaced atomically when curation completes
    cfg : harmonisation / QC / split settings (default :class:`CurateConfig`)
    seed : seed of the patient split for sources without official folds
    role : what the study may do with the store, written to ``meta.json``: ``foundation`` (pretraining
        reads only such a store) or ``downstream`` (fine-tuning, probing, evaluation)
    progress : show a tqdm progress bar

    Returns
    -------
    dict summary: ``n_catalog``, ``n_kept`` (records), ``n_rows`` (store rows), ``n_excluded``, ``n_flagged``, ``excluded_by_reason``,
    ``splits`` (records per split), ``seconds``, ``records_per_s``, ``out_dir``, ``source``.
    """
    t0 = time.perf_counter()
    cfg = cfg or CurateConfig()
    cfg.validate()  # preset conflicts are checked before the preset is applied
    cfg = cfg.resolved()
    out_dir = Path(out_dir)
    if role not in ROLES:
        raise ValueError(f"store role {role!r} unknown; valid: {list(ROLES)}")
    reader = open_reader(source, root, cfg)
    catalog = reader.catalog()
    vocab = reader.vocabulary

    # Labels (no signal needed): malformed or unknown codes exclude the record before it is read.
    excluded: list[dict[str, str]] = []
    y_rows: dict[int, np.ndarray] = {}
    for position, (record_id, cell) in enumerate(zip(catalog["record_id"], catalog["codes"])):
        try:
            codes = reader.parse_codes(cell, record_id)
            lab.check_codes(codes, vocab, record_id)
        except lab.LabelError as exc:
            if cfg.unknown_codes == "error":
                raise
            reason = "unknown_code" if isinstance(exc, lab.UnknownCodeError) else "bad_labels"
            excluded.append({"record_id": record_id, "reason": reason, "detail": str(exc), "action": "excluded"})
            continue
        y_rows[position] = lab.encode(codes, vocab)
    external_sites = cfg.external_sites
    if external_sites is None:
        external_sites = tuple(reader.declared_external_sites() or ())
    cfg = dataclasses.replace(cfg, external_sites=external_sites)
    split = assign_splits(
        catalog,
        external_sites=external_sites,
        use_folds=cfg.use_official_folds,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=seed,
    )
    positions = sorted(y_rows)
    if cfg.external_sites and not (split == "external").any():
        log.warning("none of the external sites %s occurs in %s (sites: %s)", list(cfg.external_sites), root,
                    sorted(set(catalog["site"].astype(str)))[:20] if "site" in catalog.columns else "none")

    with atomic_folder(out_dir) as tmp:
        kept = _write_signals(reader, cfg, positions, catalog["record_id"].to_numpy(), tmp, excluded, progress)
        if kept.empty:  # no store, but every record's reason stays inspectable
            _excluded_table(catalog, excluded).to_parquet(tmp / "excluded.parquet", index=False)
        else:
            summary = _write_tables(reader, cfg, source, catalog, split, kept, y_rows, excluded, tmp, seed, role)
    if kept.empty:
        reasons = Counter(e["reason"] for e in excluded)
        raise ValueError(f"{reader.root}: no record passed curation (exclusions by reason: {dict(reasons)}); "
                         f"every record's reason is in {out_dir / 'excluded.parquet'}")
    seconds = time.perf_counter() - t0
    summary.update(
        out_dir=str(out_dir), seconds=round(seconds, 2), records_per_s=round(len(catalog) / max(seconds, 1e-9), 1)
    )
    log.info("curated %s: %d kept, %d excluded in %.1f s", root, summary["n_kept"], summary["n_excluded"], seconds)
    return summary


def _write_signals(
    reader: Source,
    cfg: CurateConfig,
    positions: list[int],
    catalog_ids: np.ndarray,
    tmp: Path,
    excluded: list,
    progress: bool,
) -> pd.DataFrame:
    """Stream harmonised signals into ``tmp/signals.npy``; returns per-stored-row facts in order (empty when
    no record passed, and then no signal file is left in ``tmp``).

    Under the ``windows`` length policy a record gives one row per window (same position, ``window`` 0..K-1).
    """
    writer = SignalWriter(tmp, len(positions), len(preprocess.STANDARD_LEADS), cfg.n_samples)
    kept: list[dict[str, Any]] = []
    bar = tqdm(total=len(positions), desc=f"curate {reader.root.name}", unit="rec", disable=not progress)
    for chunk in process_in_order(reader, cfg, positions):
        block = [o for o in chunk if o.reason is None]
        for o in chunk:
            record_id = str(catalog_ids[o.position])
            if o.reason is not None:
                excluded.append({"record_id": record_id, "reason": o.reason, "detail": o.detail, "action": "excluded"})
            for reason, detail in o.flags:
                excluded.append({"record_id": record_id, "reason": reason, "detail": detail, "action": "flagged"})
        if block:
            signals = [o.signal if o.signal.ndim == 3 else o.signal[None] for o in block]  # (K, 12, T) each
            writer.append(np.concatenate(signals), np.concatenate([np.repeat(o.mask[None], len(x), 0)
                                                                   for o, x in zip(block, signals)]))
            for o, x in zip(block, signals):
                offsets = np.atleast_1d(o.offset_s)
                kept += [{"position": o.position, "window": w, "fs": o.fs, "duration_s": o.duration_s,
                          "offset_s": float(offsets[w])} for w in range(len(x))]
        bar.update(len(chunk))
    bar.close()
    if not kept:
        for name in ("signals.npy", "lead_mask.npy"):
            (tmp / name).unlink(missing_ok=True)
        return pd.DataFrame(columns=["position", "window", "fs", "duration_s", "offset_s"])
    writer.close()
    return pd.DataFrame(kept)


def _excluded_table(catalog: pd.DataFrame, excluded: list) -> pd.DataFrame:
    """excluded.parquet rows (record_id, reason, detail, action) in catalog order."""
    excl = pd.DataFrame(excluded, columns=["record_id", "reason", "detail", "action"])
    order = {rid: i for i, rid in enumerate(catalog["record_id"])}
    return excl.sort_values("record_id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def _write_tables(
    reader: Source,
    cfg: CurateConfig,
    source: str,
    catalog: pd.DataFrame,
    split: pd.Series,
    kept: pd.DataFrame,
    y_rows: dict[int, np.ndarray],
    excluded: list,
    tmp: Path,
    seed: int,
    role: str = "downstream",
) -> dict[str, Any]:
    """Write records.parquet, excluded.parquet, signature masks and (last) meta.json into ``tmp``.

    The dataset normalisation statistics are fitted on this store's train split (all records when it
    has none); a world's curation replaces them with the pretraining corpus's (:mod:`ecgstudy.data.world`).
    """
    vocab = reader.vocabulary
    pos = kept["position"].to_numpy()
    rows = catalog.iloc[pos].drop(columns="codes").reset_index(drop=True)
    front = {"record_id": rows.pop("record_id"), "patient_id": rows.pop("patient_id"), "source": source}
    front.update({c: rows.pop(c) for c in ("site", "device", "age", "sex") if c in rows.columns})
    records = pd.DataFrame(front)
    records["fs"] = kept["fs"].to_numpy()
    records["split"] = split.iloc[pos].to_numpy()
    records = pd.concat([records, rows], axis=1)
    records["duration_s"] = kept["duration_s"].to_numpy()
    records["offset_s"] = kept["offset_s"].to_numpy()
    if cfg.length_policy == "windows":  # rows of one record share its ids; window k starts at offset_s
        records["window"] = kept["window"].to_numpy()
    truth = reader.ground_truth()
    if truth is not None:
        records = records.merge(truth, on="record_id", how="left", validate="many_to_one")
    y = np.stack([y_rows[p] for p in pos]).astype(np.int8)
    labels = pd.DataFrame(y, columns=[lab.LABEL_PREFIX + c for c in vocab.codes])
    records = pd.concat([records, labels], axis=1)
    check_patient_integrity(records["patient_id"], records["split"])
    records.to_parquet(tmp / "records.parquet", index=False)

    excl = _excluded_table(catalog, excluded)
    excl.to_parquet(tmp / "excluded.parquet", index=False)
    # signature masks are per record id; windows of one record would share it, so none are written then
    n_masks = _write_masks(reader, records, tmp, cfg.duration_s) if cfg.length_policy != "windows" else -1

    dropped = excl[excl["action"] == "excluded"]
    summary = {
        "source": source,
        "root": str(reader.root),
        "n_catalog": len(catalog),
        "n_kept": int(kept["position"].nunique()),  # records; store rows differ under the windows policy
        "n_rows": len(records),
        "n_excluded": len(dropped),
        "n_flagged": int((excl["action"] == "flagged").sum()),
        "excluded_by_reason": {k: int(v) for k, v in dropped["reason"].value_counts().sort_index().items()},
        "splits": {k: int(v) for k, v in records["split"].value_counts().sort_index().items()},
    }
    meta = {
        "format_version": STORE_VERSION,
        "ecgstudy_version": __version__,
        "source": source,
        "fs": cfg.fs,
        "n_samples": cfg.n_samples,
        "leads": list(preprocess.STANDARD_LEADS),
        "labels": vocab.codes,
        "label_info": vocab.label_info(),
        "role": role,
        "preprocessing": {**cfg.preprocessing(), "stats": fit_store_stats(tmp, "train", name=SELF)},
        "qc": dataclasses.asdict(cfg.qc),
        "lead_aliases": dict(cfg.lead_aliases),
        "splits": {
            "external_sites": list(cfg.external_sites),
            "official_folds": bool(cfg.use_official_folds and "strat_fold" in catalog.columns),
            "val_fraction": cfg.val_fraction,
            "test_fraction": cfg.test_fraction,
            "seed": seed,
        },
        "reader": {"resolution": getattr(reader, "resolution", None)},
        "n_records": len(records),
        "n_excluded": summary["n_excluded"],
        "signature_masks": n_masks >= 0,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return summary


def summary_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Exclusions of one curation summary as a table (reason, records), with the kept count first."""
    rows = [("kept", summary["n_kept"])] + list(summary["excluded_by_reason"].items())
    return pd.DataFrame(rows, columns=["outcome", "records"])
