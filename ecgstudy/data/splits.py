"""Patient-level splits: train / val / test / external.

- Records of a site listed as external go to ``external`` (with every other record of their
  patients, so no patient straddles two splits).
- Sources with official folds (PTB-XL ``strat_fold``) use them: folds 1-8 train, 9 val, 10 test
  (the PTB-XL benchmark; folds 9-10 hold the human-validated labels).
- Otherwise patients are shuffled with a seeded generator and the first ``test_fraction`` of them
  go to test, the next ``val_fraction`` to val, the rest to train.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "val", "test", "external")
#: Official PTB-XL fold -> split.
FOLD_SPLIT: dict[int, str] = {**{k: "train" for k in range(1, 9)}, 9: "val", 10: "test"}


def fold_splits(folds: pd.Series) -> pd.Series:
    """Map official folds (1-10) to splits; raises naming the rows with a missing or bad fold."""
    numeric = pd.to_numeric(folds, errors="coerce")
    bad = numeric.isna() | ~numeric.isin(list(FOLD_SPLIT))
    if bad.any():
        raise ValueError(f"strat_fold must be 1..10; bad value(s) at row(s) {list(folds.index[bad][:10])}")
    return numeric.astype(int).map(FOLD_SPLIT)


def random_patient_splits(
    patients: pd.Series, val_fraction: float, test_fraction: float, seed: int
) -> pd.Series:
    """Seeded patient-grouped split: same patients + seed -> same assignment, whatever the row order."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(f"need 0 <= val_fraction, test_fraction and a sum < 1; got {val_fraction}, {test_fraction}")
    unique = np.array(sorted(set(patients.astype(str))))
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = int(round(test_fraction * len(unique)))
    n_val = int(round(val_fraction * len(unique)))
    split = np.full(len(unique), "train", dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "val"
    return patients.astype(str).map(dict(zip(unique, split)))


def assign_splits(
    catalog: pd.DataFrame,
    *,
    external_sites: Sequence[str] = (),
    use_folds: bool = True,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> pd.Series:
    """Split of every catalog row.

    Parameters
    ----------
    catalog : DataFrame with ``patient_id`` and, optionally, ``strat_fold`` and ``site``
    external_sites : site names (compared as strings) whose patients form the ``external`` split

    Returns
    -------
    Series of split names aligned with ``catalog``. Raises ValueError when official folds put one
    patient in two splits.
    """
    patients = catalog["patient_id"].astype(str)
    if use_folds and "strat_fold" in catalog.columns:
        split = fold_splits(catalog["strat_fold"])
    else:
        split = random_patient_splits(patients, val_fraction, test_fraction, seed)
    if external_sites and "site" in catalog.columns:
        at_external = catalog["site"].astype(str).isin([str(s) for s in external_sites])
        split = split.where(~patients.isin(set(patients[at_external])), "external")
    check_patient_integrity(patients, split)
    return split.rename("split")


def check_patient_integrity(patients: pd.Series, split: pd.Series) -> None:
    """Raise ValueError naming patients whose records fall in more than one split."""
    per_patient = pd.DataFrame({"p": patients.to_numpy(), "s": split.to_numpy()}).groupby("p")["s"].nunique()
    leaking = per_patient.index[per_patient > 1]
    if len(leaking):
        raise ValueError(f"patient(s) in more than one split: {list(leaking[:10])} ({len(leaking)} in all)")
