"""How separable are recording sites on curated signals: a measure of the domain shift that survived.

If a simple classifier can tell which hospital recorded an ECG from its curated signal, the sites
differ (devices, filters, noise, electrode practice, population) and "external validation" tests a
real shift; at chance, it tests none. :func:`site_features` describes each record by a few numbers per
lead that devices change (log power in frequency bands, amplitude, sample-to-sample roughness);
:func:`separability` fits a standardised multinomial logistic regression with patient-grouped,
site-stratified cross-validation and reports the balanced accuracy against its chance level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Frequency bands (Hz) whose log power describes a lead; bands above Nyquist are left out.
BANDS: tuple[tuple[float, float], ...] = ((0.0, 0.5), (0.5, 4.0), (4.0, 15.0), (15.0, 30.0), (30.0, 40.0), (40.0, 50.0))
#: Leads described: the eight independent ones (the other four are sums of I and II).
FEATURE_LEADS: tuple[int, ...] = (0, 1, 6, 7, 8, 9, 10, 11)
#: Records per block while computing features (bounds memory).
BLOCK = 256


def site_features(signals: np.ndarray, rows: np.ndarray, fs: float) -> np.ndarray:
    """Per-record features of the domain: (len(rows), n_features) float64.

    Parameters
    ----------
    signals : (N, 12, T) float32 mV at ``fs`` Hz (a memory map is read block by block); missing leads NaN.
    rows : the records described.

    Per lead of :data:`FEATURE_LEADS`: log10 mean power in each band of :data:`BANDS` below Nyquist,
    log10 of the 1-99 % amplitude range and of the std of the first difference. Missing leads give 0.
    """
    out = []
    rows = np.asarray(rows, dtype=np.int64)
    for start in range(0, len(rows), BLOCK):
        x = np.nan_to_num(np.asarray(signals[rows[start : start + BLOCK]][:, FEATURE_LEADS], np.float64))  # (b, 8, T)
        x = x - x.mean(axis=-1, keepdims=True)
        freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / fs)
        power = np.abs(np.fft.rfft(x, axis=-1)) ** 2 / x.shape[-1]
        parts = [
            np.log10(power[..., (freqs >= lo) & (freqs < hi)].mean(axis=-1) + 1e-9)
            for lo, hi in BANDS if lo < fs / 2 and ((freqs >= lo) & (freqs < hi)).any()
        ]
        q = np.percentile(x, [1, 99], axis=-1)
        parts.append(np.log10(q[1] - q[0] + 1e-6))
        parts.append(np.log10(np.diff(x, axis=-1).std(axis=-1) + 1e-6))
        out.append(np.concatenate(parts, axis=1))  # (b, 8 * n_parts)
    return np.concatenate(out) if out else np.zeros((0, 0))


def separability(features: np.ndarray, sites: np.ndarray, patients: np.ndarray, *, seed: int,
                 n_splits: int = 5) -> dict[str, float | int]:
    """Cross-validated balanced accuracy of a site classifier (patients never in two folds).

    Returns ``{"balanced_accuracy", "chance", "n_records", "n_sites"}``; with one site (or too few
    records per site for ``n_splits`` folds) the accuracy is NaN.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sites = np.asarray(sites).astype(str)
    labels, counts = np.unique(sites, return_counts=True)
    result: dict[str, float | int] = {"n_records": int(len(sites)), "n_sites": int(len(labels)),
                                      "chance": 1.0 / max(len(labels), 1), "balanced_accuracy": float("nan")}
    if len(labels) < 2 or counts.min() < n_splits:
        return result
    predicted = np.empty(len(sites), dtype=object)
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, test in folds.split(features, sites, groups=np.asarray(patients).astype(str)):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        model.fit(features[train], sites[train])
        predicted[test] = model.predict(features[test])
    result["balanced_accuracy"] = float(balanced_accuracy_score(sites, predicted.astype(str)))
    return result


def sample_rows(records: pd.DataFrame, max_records: int, seed: int) -> np.ndarray:
    """At most ``max_records`` row indices, a seeded sample spread evenly over sites (ascending)."""
    rows = np.arange(len(records))
    if len(rows) <= max_records:
        return rows
    rng = np.random.default_rng(seed)
    sites = records["site"].astype(str).to_numpy()
    per_site = max(1, max_records // len(np.unique(sites)))
    picked = [rng.permutation(rows[sites == s])[:per_site] for s in np.unique(sites)]
    return np.sort(np.concatenate(picked))


def separability_table(stores: dict, *, seed: int, max_records: int = 2000,
                       pool: tuple[str, ...] = ("foundation", "main")) -> pd.DataFrame:
    """Site separability of each store, and corpus separability across stores.

    Parameters
    ----------
    stores : {store name: :class:`~ecgstudy.data.store.Store`} (e.g. foundation, main, rare).
    max_records : records sampled per store (evenly over its sites).
    pool : the stores whose corpora are told apart in the ``corpus`` row.

    Returns one row per store (``grouping`` = ``site``: which hospital recorded it, within the store) and,
    when two ``pool`` stores are present, one row with ``grouping`` = ``corpus`` (foundation vs downstream vs
    external: the ``corpus`` column where a store has one, else the store's name), with the columns of
    :func:`separability`.
    """
    rows, pooled = [], []
    for name, store in stores.items():
        rec = store.records
        picked = sample_rows(rec, max_records, seed)
        feats = site_features(store.signals, picked, float(store.fs))
        part = rec.iloc[picked]
        rows.append({"store": name, "grouping": "site",
                     **separability(feats, part["site"].to_numpy(), part["patient_id"].to_numpy(), seed=seed)})
        corpus = part["corpus"].astype(str).to_numpy() if "corpus" in part.columns else np.full(len(part), name)
        if name in pool:
            pooled.append((feats, corpus, part["patient_id"].astype(str).to_numpy()))
    if len(pooled) > 1:
        feats = np.concatenate([p[0] for p in pooled])
        rows.append({"store": "+".join(n for n in stores if n in pool), "grouping": "corpus",
                     **separability(feats, np.concatenate([p[1] for p in pooled]),
                                    np.concatenate([p[2] for p in pooled]), seed=seed)})
    return pd.DataFrame(rows, columns=["store", "grouping", "balanced_accuracy", "chance", "n_records", "n_sites"])
