"""Patient-respecting, label-stratified folds (PTB-XL's ``strat_fold`` 1-10).

All records of a patient land in one fold. Patients are placed one at a time, those carrying the rarest
labels first, each into the fold that so far holds the fewest patients with its rarest label (ties: the
fewest records, then a seeded random choice), so every fold gets a share of every label (the idea of
PTB-XL's stratification, Wagner et al. 2020; iterative stratification, Sechidis et al. 2011).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np


def stratified_folds(
    rng: np.random.Generator, patient_ids: Sequence[int], labels: Sequence[Iterable[str]], n_folds: int = 10
) -> np.ndarray:
    """Fold number (1..n_folds) of every record.

    Parameters
    ----------
    patient_ids : patient of each record.
    labels : label codes of each record.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    per_patient: dict[int, set[str]] = defaultdict(set)
    n_records: Counter = Counter()
    for pid, codes in zip(patient_ids, labels):
        per_patient[int(pid)].update(codes)
        n_records[int(pid)] += 1
    freq = Counter(code for codes in per_patient.values() for code in codes)
    patients = sorted(per_patient)
    tie = rng.permutation(len(patients))
    rarest = {
        pid: min(per_patient[pid], key=lambda c: (freq[c], c)) if per_patient[pid] else ""
        for pid in patients
    }
    order = sorted(range(len(patients)), key=lambda i: (freq.get(rarest[patients[i]], 0), tie[i]))
    label_count = np.zeros((n_folds, 0), int)
    label_index: dict[str, int] = {}
    fold_records = np.zeros(n_folds, int)
    fold_of: dict[int, int] = {}
    for i in order:
        pid = patients[i]
        code = rarest[pid]
        if code not in label_index:
            label_index[code] = len(label_index)
            label_count = np.hstack([label_count, np.zeros((n_folds, 1), int)])
        j = label_index[code]
        jitter = rng.random(n_folds)
        best = min(range(n_folds), key=lambda f: (label_count[f, j], fold_records[f], jitter[f]))
        fold_of[pid] = best + 1
        for c in per_patient[pid]:
            if c not in label_index:
                label_index[c] = len(label_index)
                label_count = np.hstack([label_count, np.zeros((n_folds, 1), int)])
            label_count[best, label_index[c]] += 1
        fold_records[best] += n_records[pid]
    return np.array([fold_of[int(pid)] for pid in patient_ids], dtype=int)
