"""How far age and sex can be read from standard ECG measurements: a check on the data, not a model.

Real ECGs carry their owner's age and sex strongly enough that a deep network reads sex at AUROC 0.97 and
age at a mean absolute error of 6.9 years (Attia et al. 2019). A simulated world whose age and sex effects
are too weak would make any "the embedding encodes demographics" finding meaningless, so the curate stage
measures it directly, the same way on simulated and real data: the per-lead amplitudes and global intervals
of :func:`ecgstudy.data.measure.measure_leads` (what a computerised ECG program reports), a logistic
regression for sex and a ridge regression for age (fixed, untuned: C = 1, alpha = 1, on standardised,
median-imputed features), out-of-fold over patient-grouped folds. Three feature sets: ``global`` (heart rate,
QRS, QT, Sokolow-Lyon and limb voltage, the frontal QRS and T axes, the frontal QRS-T angle, the RMSSD of the
strip, the PR interval and the P duration: 11 numbers), ``per_lead`` (those plus R, S, ST and T amplitude in each
of the 12 leads: 59 numbers) and
``site_only`` (which site recorded it, one-hot: a baseline, since sites differ
in their age and sex mix and are told apart from their signals). Each store is read twice: over ``all`` its
records of known age and sex (the case mix the study learns from) and over its ``healthy`` ones (labelled with the
normal-ECG statement NORM and no other diagnostic statement; rhythm and form statements allowed), the population in which published explainable-measure models read age (Starc et al.
2011; Lindow et al. 2022). :func:`readability_table` also returns the out-of-fold predictions, so the curate stage
can put patient-bootstrap intervals on them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecgstudy.data.leads import LEADS
from ecgstudy.data.measure import AXIS_RHYTHM_MEASURES, GLOBAL_MEASURES, LEAD_MEASURES, P_WAVE_MEASURES, measure_leads

#: The measured feature sets compared: name -> measures of :data:`~ecgstudy.data.measure.LEAD_MEASURES`.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "global": GLOBAL_MEASURES + ("hr_bpm",) + AXIS_RHYTHM_MEASURES + P_WAVE_MEASURES,
    "per_lead": LEAD_MEASURES,
}
#: The baseline feature set: the recording site, one-hot.
SITE_ONLY = "site_only"
#: Columns of :func:`readability_table`.
COLUMNS = [
    "store", "records", "features", "n_features", "n_records", "n_patients", "sex_auroc", "sex_balanced_accuracy", "age_mae",
    "age_mae_mean_predictor", "age_r",
]
#: The record subsets read per store: every record of known age and sex, and the healthy ones among them.
SUBSETS: tuple[str, ...] = ("all", "healthy")
#: The label that marks a healthy record (PTB-XL's normal-ECG statement; the store column ``y_NORM``).
HEALTHY_LABEL = "NORM"
#: A store subset with fewer records of known age and sex than this gets no row.
MIN_RECORDS = 50
#: Per-lead measures (kinds of :func:`~ecgstudy.data.measure.measure_leads`) blanked for a missing lead.
_PER_LEAD_KINDS = ("R", "S", "ST", "T")


def measured_features(signals: np.ndarray, rows: np.ndarray, fs: float) -> pd.DataFrame:
    """:func:`~ecgstudy.data.measure.measure_leads` of each record in ``rows``: (len(rows), 59) frame.

    ``signals`` is (N, 12, T) mV at ``fs`` Hz (a memory map is read one record at a time). A missing lead
    (NaN, or flat: a disconnected electrode) is measured as zeros so the other leads can be, and its own
    R, S, ST and T are then set to NaN (imputed later, inside each training fold).
    """
    out = []
    for i in rows:
        x = np.asarray(signals[i], np.float64)
        filled = np.nan_to_num(x)
        missing = ~np.isfinite(x).all(axis=1) | (np.ptp(filled, axis=1) < 1e-6)
        m = measure_leads(filled, fs)
        for k in np.flatnonzero(missing):
            for kind in _PER_LEAD_KINDS:
                m[f"{kind}_{LEADS[k]}"] = float("nan")
        out.append(m)
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


def scores(age: np.ndarray, sex: np.ndarray, pred_age: np.ndarray, pred_sex: np.ndarray) -> dict[str, float]:
    """Sex AUROC and balanced accuracy (probability >= 0.5), age MAE, the MAE of predicting the (in-sample)
    mean age, and Pearson's r of predicted vs true age; NaN sex scores when fewer than two sexes were scored."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    scored = np.isfinite(pred_sex)
    two_sexes = len(np.unique(sex[scored])) == 2
    return {
        "sex_auroc": float(roc_auc_score(sex[scored], pred_sex[scored])) if two_sexes else float("nan"),
        "sex_balanced_accuracy": (float(balanced_accuracy_score(sex[scored], pred_sex[scored] >= 0.5))
                                  if two_sexes else float("nan")),
        "age_mae": float(np.mean(np.abs(pred_age - age))),
        "age_mae_mean_predictor": float(np.mean(np.abs(age - age.mean()))),
        "age_r": float(np.corrcoef(pred_age, age)[0, 1]),
    }


def read(features: pd.DataFrame, age: np.ndarray, sex: np.ndarray, patients: np.ndarray, *,
         seed: int) -> tuple[dict[str, float | int], np.ndarray, np.ndarray]:
    """(:func:`scores` with the counts, predicted age (N,), predicted probability of sex 1 (N,)) of
    out-of-fold linear predictions from ``features`` (N, F).

    Parameters
    ----------
    age : (N,) years; sex : (N,) 0 = male, 1 = female; patients : (N,) patient ids.
    """
    age, sex = np.asarray(age, np.float64), np.asarray(sex, np.float64)
    pred_age, pred_sex = out_of_fold(features.to_numpy(np.float64), age, sex, patients, seed=seed)
    row = {"n_features": int(features.shape[1]), "n_records": int(len(age)),
           "n_patients": int(len(np.unique(np.asarray(patients).astype(str)))), **scores(age, sex, pred_age, pred_sex)}
    return row, pred_age, pred_sex


def readability(features: pd.DataFrame, age: np.ndarray, sex: np.ndarray, patients: np.ndarray, *,
                seed: int) -> dict[str, float | int]:
    """The scores and counts of :func:`read` (no predictions)."""
    return read(features, age, sex, patients, seed=seed)[0]


def known_demographics(records: pd.DataFrame) -> np.ndarray:
    """Row indices of ``records`` with a finite age and a sex of 0 or 1 (N_known,)."""
    if "age" not in records.columns or "sex" not in records.columns:
        return np.zeros(0, dtype=np.int64)
    age = pd.to_numeric(records["age"], errors="coerce").to_numpy(np.float64)
    sex = pd.to_numeric(records["sex"], errors="coerce").to_numpy(np.float64)
    return np.flatnonzero(np.isfinite(age) & np.isin(sex, (0.0, 1.0)))


def healthy_records(records: pd.DataFrame, diagnostic: list[str]) -> np.ndarray:
    """Row indices of ``records`` labelled :data:`HEALTHY_LABEL` (column ``y_NORM`` = 1) and no other of the
    ``diagnostic`` statement codes (rhythm and form statements such as SR or PVC allowed), (N_healthy,); none
    when the store has no ``y_NORM`` column. In PTB-XL a statement counts whatever its likelihood, and NORM can
    come with other diagnostic statements: those records are not healthy here."""
    def column(code: str) -> np.ndarray:
        return pd.to_numeric(records[f"y_{code}"], errors="coerce").to_numpy(np.float64) == 1.0

    if f"y_{HEALTHY_LABEL}" not in records.columns:
        return np.zeros(0, dtype=np.int64)
    other = [c for c in diagnostic if c != HEALTHY_LABEL and f"y_{c}" in records.columns]
    ill = np.any([column(c) for c in other], axis=0) if other else np.zeros(len(records), bool)
    return np.flatnonzero(column(HEALTHY_LABEL) & ~ill)


def diagnostic_codes(store) -> list[str]:
    """The diagnostic statement codes of ``store``: from its ``meta["label_info"]`` when it has one, else those
    of the packaged PTB-XL vocabulary."""
    from ecgstudy.data.labels import Vocabulary, load_vocabulary

    info = (getattr(store, "meta", None) or {}).get("label_info")
    vocabulary = Vocabulary.from_label_info(info) if info else load_vocabulary()
    return vocabulary.codes_of("diagnostic")


def readability_table(stores: dict, *, seed: int, max_records: int = 1000,
                      names: tuple[str, ...] = ("main",)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How well each feature set reads age and sex, per store of ``names`` and record subset of :data:`SUBSETS`.

    Parameters
    ----------
    stores : {store name: :class:`~ecgstudy.data.store.Store`}; stores not in ``names`` are skipped, as is a
        subset with fewer than :data:`MIN_RECORDS` records of known age and sex (no row).
    max_records : records measured per store and subset (a seeded sample of those with known age and sex; each
        record is measured once, whichever subsets draw it).

    Returns
    -------
    (table, predictions): one row per store, subset (column ``records``) and feature set (:data:`FEATURE_SETS`,
    then :data:`SITE_ONLY` when the store has a ``site`` column), columns :data:`COLUMNS`; and the out-of-fold
    predictions, one row per record, subset and feature set (store, records, features, record_id, patient_id,
    age, sex, pred_age, pred_sex).
    """
    rows, predictions = [], []
    for name in names:
        if name not in stores:
            continue
        store = stores[name]
        known = known_demographics(store.records)
        healthy = healthy_records(store.records, diagnostic_codes(store))
        subsets = dict(zip(SUBSETS, (known, np.intersect1d(known, healthy))))
        draws = {}
        for k, (subset, pool) in enumerate(subsets.items()):
            if len(pool) >= MIN_RECORDS:
                rng = np.random.default_rng([seed, len(name), *name.encode(), *([k] if k else [])])
                draws[subset] = np.sort(rng.choice(pool, min(max_records, len(pool)), replace=False))
        if not draws:
            continue
        every = np.unique(np.concatenate(list(draws.values())))
        measured = measured_features(store.signals, every, float(store.fs))
        for subset, picked in draws.items():
            part = store.records.iloc[picked]
            sets = {label: measured.loc[picked, list(columns)] for label, columns in FEATURE_SETS.items()}
            if "site" in part.columns:
                sets[SITE_ONLY] = pd.get_dummies(part["site"].astype(str), dtype=float)
            age = pd.to_numeric(part["age"]).to_numpy(np.float64)
            sex = pd.to_numeric(part["sex"]).to_numpy(np.float64)
            for label, features in sets.items():
                row, pred_age, pred_sex = read(features, age, sex, part["patient_id"].to_numpy(), seed=seed)
                predictions.append(pd.DataFrame({
                    "store": name, "records": subset, "features": label,
                    "record_id": part["record_id"].to_numpy() if "record_id" in part else picked,
                    "patient_id": part["patient_id"].to_numpy(), "age": age, "sex": sex,
                    "pred_age": pred_age, "pred_sex": pred_sex}))
                rows.append({"store": name, "records": subset, "features": label, **row})
    pred_columns = ["store", "records", "features", "record_id", "patient_id", "age", "sex", "pred_age", "pred_sex"]
    return (pd.DataFrame(rows, columns=COLUMNS),
            pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame(columns=pred_columns))
