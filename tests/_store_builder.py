"""A tiny curated store (contract 2) with learnable synthetic signals, for the training-stage tests.

Each record: a periodic "beat" train whose rate, lead gains and phase are record-specific (so two segments
of one record look alike: something for contrastive pretraining to find), plus one distinct waveform per
positive label on a label-specific group of leads (so the labels are learnable from the signal).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
MAIN_CODES = ("NORM", "AFIB", "CLBBB", "IMI", "LVH")
_KIND = {"NORM": "diagnostic", "AFIB": "rhythm", "CLBBB": "diagnostic", "IMI": "diagnostic", "LVH": "diagnostic"}
_CLASS = {"NORM": ("NORM", "NORM"), "CLBBB": ("CD", "CLBBB"), "IMI": ("MI", "IMI"), "LVH": ("HYP", "LVH")}


def _label_info(codes: list[str]) -> dict[str, dict[str, str]]:
    info = {}
    for code in codes:
        kind = _KIND.get(code, "other")
        cls, sub = _CLASS.get(code, ("", "")) if kind == "diagnostic" else ("", "")
        info[code] = {"description": code.lower(), "diagnostic_class": cls, "diagnostic_subclass": sub, "kind": kind}
    return info


def _signals(y: np.ndarray, fs: float, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 12, T) float32 mV: record-specific beats + one signature per positive label."""
    n, n_labels = y.shape
    t = np.arange(n_samples) / fs
    out = np.empty((n, 12, n_samples), np.float32)
    for i in range(n):
        rate = rng.uniform(0.9, 1.8)  # beats per second
        phase = rng.uniform(0, 1)
        beat = np.exp(-(((t * rate + phase) % 1.0 - 0.5) ** 2) / 0.002)  # sharp periodic spikes
        gains = rng.normal(1.0, 0.4, size=12)
        sig = gains[:, None] * beat[None, :] + rng.normal(0, 0.05, size=(12, n_samples))
        for k in np.flatnonzero(y[i]):
            leads = np.arange(12)[(np.arange(12) + k) % 3 == 0]  # label-specific lead group
            sig[leads] += 0.6 * np.sin(2 * np.pi * (2.0 + 1.5 * k) * t)[None, :]
        out[i] = sig
    return out


def build_store(
    path: Path,
    n_records: int = 160,
    *,
    codes: tuple[str, ...] = MAIN_CODES,
    fs: float = 100.0,
    n_samples: int = 1000,
    seed: int = 0,
    prevalence: float = 0.3,
    rare_sets: dict[str, int] | None = None,
    missing_lead_frac: float = 0.05,
) -> Path:
    """Write a contract-2 store at ``path`` and return it.

    Parameters
    ----------
    n_records
        Records of the main cohort (ignored when ``rare_sets`` is given).
    rare_sets
        Build a rare store instead: {condition code: number of cases}; each set gets two controls per
        case, labelled ``case_control_set`` = the condition.
    """
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if rare_sets:
        codes = tuple(["NORM", *rare_sets])
        rows, ys = [], []
        for cond, n_cases in rare_sets.items():
            for j in range(3 * n_cases):
                case = j < n_cases
                y = np.zeros(len(codes), np.int8)
                y[codes.index(cond)] = case
                y[0] = not case
                ys.append(y)
                rows.append({"case_control_set": cond})
        y = np.array(ys)
        records = pd.DataFrame(rows)
    else:
        y = (rng.random((n_records, len(codes))) < prevalence).astype(np.int8)
        records = pd.DataFrame(index=range(n_records))
    n = len(y)
    records["record_id"] = [f"r{i:05d}" for i in range(n)]
    patient = np.arange(n) // 2 if not rare_sets else np.arange(n)  # two records per patient in the main store
    records["patient_id"] = [f"p{p:05d}" for p in patient]
    records["source"] = "test"
    split_of_patient = rng.choice(["train", "val", "test", "external"], size=patient.max() + 1, p=[0.55, 0.15, 0.15, 0.15])
    records["split"] = split_of_patient[patient]
    records["site"] = np.where(records["split"] == "external", "site_b", "site_a")
    records["device"] = "dev"
    records["age"] = rng.integers(20, 90, n).astype(float)
    records["sex"] = rng.integers(0, 2, n)
    records["fs"] = 500.0
    for j, code in enumerate(codes):
        records[f"y_{code}"] = y[:, j].astype(np.int8)
    signals = _signals(y, fs, n_samples, rng)
    lead_mask = np.ones((n, 12), bool)
    drop = rng.random(n) < missing_lead_frac
    lead_mask[drop, 6:] = False  # some records lack the chest leads
    signals[~lead_mask] = np.nan
    records.to_parquet(path / "records.parquet", index=False)
    np.save(path / "signals.npy", signals)
    np.save(path / "lead_mask.npy", lead_mask)
    pd.DataFrame({"record_id": pd.Series(dtype=str), "reason": pd.Series(dtype=str), "detail": pd.Series(dtype=str)}).to_parquet(
        path / "excluded.parquet", index=False
    )
    meta = {
        "fs": fs,
        "n_samples": n_samples,
        "leads": LEADS,
        "labels": list(codes),
        "label_info": _label_info(list(codes)),
        "preprocessing": {"normalise": "per_lead_zscore", "bandpass": None},
        "source": "test",
        "n_records": n,
    }
    (path / "meta.json").write_text(json.dumps(meta, indent=2))
    return path
