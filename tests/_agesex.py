"""How far age and sex can be read from simulated ECGs: a cohort of the default sites, per-lead features
measured on the written signal (median beat), a logistic model for sex and a ridge for age.

Used by tests/test_simulate_physiology.py; run as a script to print the report and the simulation speed:
``PYTHONPATH=$PWD python tests/_agesex.py 1000``.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

from ecgstudy.data.measure import LEADS, measure_global, median_beat
from ecgstudy.simulate import default_sites, sample_patient, simulate_record
from ecgstudy.simulate.conditions import sample_conditions

TRUTH_FEATURES = ["hr_bpm", "pr_ms", "qrs_ms", "qtc_ms", "axis_deg", "sokolow_mv", "limb_qrs_mv"]


def cohort(n: int, seed: int = 0, conditions: bool = True):
    """``n`` records of the default sites' demographics and case mix: (records, patients), one per patient."""
    rng = np.random.default_rng(seed)
    sites = default_sites()
    w = np.array([s.weight for s in sites])
    out = []
    for i in range(n):
        k = int(rng.choice(len(sites), p=w / w.sum()))
        s = sites[k]
        p = sample_patient(rng, i, k, s.age_mean, s.age_sd, s.female_frac)
        c = sample_conditions(rng, p.age, p.sex, p.bmi, s.prevalence) if conditions else {}
        out.append((p, c, s, int(rng.integers(2**31))))
    return out


def lead_features(signal: np.ndarray, fs: float) -> dict[str, float]:
    """Per-lead R, S, ST (J + 40 ms) and T amplitudes on the median beat, plus the global measures."""
    out = dict(measure_global(signal, fs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = median_beat(signal, fs)
    if made is None:
        return out
    beat, bfs, mean_rr = made
    out["hr_meas"] = 60.0 / mean_rr
    c = int(round(0.3 * bfs))
    base = beat[:, c - int(0.09 * bfs) : c - int(0.06 * bfs)].mean(axis=1)
    x = beat - base[:, None]
    qrs = x[:, c - int(0.06 * bfs) : c + int(0.06 * bfs)]
    qrs_ms = out.get("qrs_ms", np.nan)
    j = c + int((0.5 * qrs_ms if np.isfinite(qrs_ms) else 50.0) * bfs / 1000.0)
    st = x[:, j + int(0.04 * bfs)]
    tw = x[:, j + int(0.08 * bfs) : min(j + int(0.36 * bfs), x.shape[1])]
    k = np.abs(tw).argmax(axis=1)
    t = tw[np.arange(12), k]
    for i, lead in enumerate(LEADS):
        out[f"R_{lead}"] = float(qrs[i].max())
        out[f"S_{lead}"] = float(qrs[i].min())
        out[f"ST_{lead}"] = float(st[i])
        out[f"T_{lead}"] = float(t[i])
    return out


def simulate_cohort(n: int, seed: int = 0, conditions: bool = True) -> tuple[pd.DataFrame, float]:
    """Simulate and measure the cohort: (table of features, truth and demographics, records/s of simulation)."""
    rows = []
    sim_s = 0.0
    for p, c, s, rs in cohort(n, seed, conditions):
        t0 = time.perf_counter()
        rec = simulate_record(np.random.default_rng(rs), c, p, s)
        sim_s += time.perf_counter() - t0
        row = {"age": p.age, "sex": p.sex, "norm": int(not c)}
        row.update({f"gt_{k}": rec.truth[k] for k in TRUTH_FEATURES})
        row.update(lead_features(rec.signal, rec.fs))
        rows.append(row)
    return pd.DataFrame(rows), n / sim_s


def readability(d: pd.DataFrame, features: list[str], seed: int = 0) -> tuple[float, float, float]:
    """(sex AUROC, age MAE, MAE of the mean predictor) on a held-out quarter, standardised features,
    median-imputed: logistic regression (C=1) and ridge (alpha=1)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import mean_absolute_error, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    test = rng.random(len(d)) < 0.25
    x = d[features].to_numpy(float)
    x[~np.isfinite(x)] = np.nan
    tr, te = ~test, test

    def model(est):
        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), est)

    clf = model(LogisticRegression(C=1.0, max_iter=2000)).fit(x[tr], d.sex[tr])
    auc = roc_auc_score(d.sex[te], clf.predict_proba(x[te])[:, 1])
    reg = model(Ridge(alpha=1.0)).fit(x[tr], d.age[tr])
    mae = mean_absolute_error(d.age[te], reg.predict(x[te]))
    mean_mae = mean_absolute_error(d.age[te], np.full(te.sum(), d.age[tr].mean()))
    return float(auc), float(mae), float(mean_mae)


def lead_columns(d: pd.DataFrame) -> list[str]:
    return [c for c in d.columns if c.split("_")[0] in ("R", "S", "ST", "T")] + ["qrs_ms", "qt_ms", "hr_meas"]


def report(n: int = 1000, seed: int = 0) -> dict[str, float]:
    d, speed = simulate_cohort(n, seed)
    gt = readability(d, [f"gt_{k}" for k in TRUTH_FEATURES])
    meas = readability(d, lead_columns(d))
    return {
        "n": n, "records_per_s": speed,
        "gt_sex_auroc": gt[0], "gt_age_mae": gt[1],
        "lead_sex_auroc": meas[0], "lead_age_mae": meas[1], "mean_age_mae": meas[2],
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    t0 = time.perf_counter()
    r = report(n)
    print({k: round(v, 3) for k, v in r.items()}, f"total {time.perf_counter() - t0:.0f} s")
