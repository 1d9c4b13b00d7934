"""How far age and sex can be read from standard ECG measurements: a check on the data, not a model.

Real ECGs carry their owner's age and sex strongly enough that a deep network reads sex at AUROC 0.97 and
age at a mean absolute error of 6.9 years (Attia et al. 2019). A simulated world whose age and sex effects
are too weak would make any "the embedding encodes demographics" finding meaningless, so the curate stage
measures it directly, the same way on simulated and real data: the per-lead amplitudes and global intervals
of :func:`ecgstudy.data.measure.measure_leads` (what a computerised ECG program reports), a logistic
regression for sex and a ridge regression for age (fixed, untuned: C = 1, alpha = 1, on standardised,
median-imputed features), out-of-fold over patient-grouped folds. Two feature sets: ``global`` (heart rate,
QRS, QT, Sokolow-Lyon and limb voltage: 5 numbers) and ``per_lead`` (those plus R, S, ST and T amplitude in
each of the 12 leads: 53 numbers). Like the site separability of :mod:`ecgstudy.data.site_shift`, a
descriptive check of the data with point estimates (no study claim rests on it; the latent stage gives the
embeddings' age and sex read-out with patient-bootstrap intervals).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecgstudy.data.measure import GLOBAL_MEASURES, LEAD_MEASURES, measure_leads

#: The feature sets compared: name -> measures of :data:`~ecgstudy.data.measure.LEAD_MEASURES`.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "global": GLOBAL_MEASURES + ("hr_bpm",),
    "per_lead": LEAD_MEASURES,
}
#: Columns of :func:`readability_table`.
COLUMNS = [
    "store", "features", "n_features", "n_records", "n_patients", "sex_auroc", "age_mae", "age_mae_mean_predictor",
    "age_r",
]


def measured_features(signals: np.ndarray, rows: np.ndarray, fs: float) -> pd.DataFrame:
    """:func:`~ecgstudy.data.measure.measure_leads` of each record in ``rows``: (len(rows), 53) frame.

    ``signals`` is (N, 12, T) mV at ``fs`` Hz (a memory map is read one record at a time); a lead that is
    missing (NaN) is read as flat, so its amplitudes come out near 0 or the whole record as NaN.
    """
    out = [measure_leads(np.nan_to_num(np.asarray(signals[i], np.float64)), fs) for i in rows]
    return pd.DataFrame(out, columns=list(LEAD_MEASURES), index=np.asarray(rows))


def out_of_fold(features: np.ndarray, age: np.ndarray, sex: np.ndarray, patients: np.ndarray, *, seed: int,
                n_splits: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold (predicted age in years, predicted probability of sex 1), each (N,).

    Folds group records by patient (no patient in two folds). Features (N, F) are median-imputed (a feature
    never measured in a training fold is left out) and standardised inside each fold.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.where(np.isfinite(features), features, np.nan)
    pred_age, pred_sex = np.full(len(x), np.nan), np.full(len(x), np.nan)
    folds = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, test in folds.split(x, groups=np.asarray(patients).astype(str)):
        def model(estimator):
            return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), estimator)

        pred_age[test] = model(Ridge(alpha=1.0)).fit(x[train], age[train]).predict(x[test])
        if len(np.unique(sex[train])) == 2:
            clf = model(LogisticRegression(C=1.0, max_iter=2000)).fit(x[train], sex[train])
            pred_sex[test] = clf.predict_proba(x[test])[:, 1]
    return pred_age, pred_sex


def readability(features: pd.DataFrame, age: np.ndarray, sex: np.ndarray, patients: np.ndarray, *,
                seed: int) -> dict[str, float | int]:
    """Sex AUROC and age MAE of out-of-fold linear predictions from ``features``, the MAE of predicting the
    mean age, and Pearson's r of predicted vs true age (NaN sex AUROC when one sex only).

    Parameters
    ----------
    features : (N, F) measurements, one row per record.
    age : (N,) years; sex : (N,) 0 = male, 1 = female; patients : (N,) patient ids.
    """
    age, sex = np.asarray(age, np.float64), np.asarray(sex, np.float64)
    pred_age, pred_sex = out_of_fold(features.to_numpy(np.float64), age, sex, patients, seed=seed)
    from sklearn.metrics import roc_auc_score

    scored = np.isfinite(pred_sex)
    two_sexes = len(np.unique(sex[scored])) == 2
    return {
        "n_features": int(features.shape[1]), "n_records": int(len(age)),
        "n_patients": int(len(np.unique(np.asarray(patients).astype(str)))),
        "sex_auroc": float(roc_auc_score(sex[scored], pred_sex[scored])) if two_sexes else float("nan"),
        "age_mae": float(np.mean(np.abs(pred_age - age))),
        "age_mae_mean_predictor": float(np.mean(np.abs(age - age.mean()))),  # in-sample mean: a generous baseline
        "age_r": float(np.corrcoef(pred_age, age)[0, 1]),
    }


def known_demographics(records: pd.DataFrame) -> np.ndarray:
    """Row indices of ``records`` with a finite age and a sex of 0 or 1 (N_known,)."""
    if "age" not in records.columns or "sex" not in records.columns:
        return np.zeros(0, dtype=np.int64)
    age = pd.to_numeric(records["age"], errors="coerce").to_numpy(np.float64)
    sex = pd.to_numeric(records["sex"], errors="coerce").to_numpy(np.float64)
    return np.flatnonzero(np.isfinite(age) & np.isin(sex, (0.0, 1.0)))


def readability_table(stores: dict, *, seed: int, max_records: int = 1000,
                      names: tuple[str, ...] = ("main",)) -> pd.DataFrame:
    """How well each feature set reads age and sex, per store of ``names`` (columns :data:`COLUMNS`).

    Parameters
    ----------
    stores : {store name: :class:`~ecgstudy.data.store.Store`}; stores not in ``names`` are skipped, as is a
        store with fewer than 50 records of known age and sex (no row).
    max_records : records measured per store (a seeded sample of those with known age and sex).
    """
    rows = []
    for name in names:
        if name not in stores:
            continue
        store = stores[name]
        known = known_demographics(store.records)
        if len(known) < 50:
            continue
        rng = np.random.default_rng([seed, len(name), *name.encode()])
        picked = np.sort(rng.choice(known, min(max_records, len(known)), replace=False))
        feats = measured_features(store.signals, picked, float(store.fs))
        part = store.records.iloc[picked]
        age = pd.to_numeric(part["age"]).to_numpy(np.float64)
        sex = pd.to_numeric(part["sex"]).to_numpy(np.float64)
        for label, columns in FEATURE_SETS.items():
            r = readability(feats[list(columns)], age, sex, part["patient_id"].to_numpy(), seed=seed)
            rows.append({"store": name, "features": label, **r})
    return pd.DataFrame(rows, columns=COLUMNS)
