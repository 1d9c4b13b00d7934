"""How far age and sex can be read from simulated ECGs: a cohort of the default sites' demographics and case
mix, measured with :func:`ecgstudy.data.measure.measure_leads` and read by
:func:`ecgstudy.data.demographics.readability` (the curate stage's check, on freshly simulated records).

Used by tests/test_simulate_physiology.py; run as a script to print the report and the simulation speed:
``PYTHONPATH=$PWD python tests/_agesex.py 1000``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from ecgstudy.data import demographics
from ecgstudy.data.measure import measure_leads
from ecgstudy.simulate import default_sites, sample_patient, simulate_record
from ecgstudy.simulate.conditions import sample_conditions

#: The simulator's ground truth of the global measures (what a perfect measurer would read).
TRUTH_FEATURES = ["hr_bpm", "pr_ms", "qrs_ms", "qtc_ms", "axis_deg", "sokolow_mv", "limb_qrs_mv"]


def simulate_cohort(n: int, seed: int = 0) -> tuple[pd.DataFrame, float]:
    """``n`` records, one per patient, of the default sites' demographics and case mix: (table of age, sex,
    patient, measured features and ``gt_`` truth, records/s of simulation)."""
    rng = np.random.default_rng(seed)
    sites = default_sites()
    w = np.array([s.weight for s in sites])
    rows, sim_s = [], 0.0
    for i in range(n):
        s = sites[int(rng.choice(len(sites), p=w / w.sum()))]
        p = sample_patient(rng, i, 0, s.age_mean, s.age_sd, s.female_frac)
        c = sample_conditions(rng, p.age, p.sex, p.bmi, s.prevalence)
        t0 = time.perf_counter()
        rec = simulate_record(np.random.default_rng(int(rng.integers(2**31))), c, p, s)
        sim_s += time.perf_counter() - t0
        row = {"age": p.age, "sex": p.sex, "patient_id": i}
        row.update({f"gt_{k}": rec.truth[k] for k in TRUTH_FEATURES})
        row.update(measure_leads(rec.signal, rec.fs))
        rows.append(row)
    return pd.DataFrame(rows), n / sim_s


def report(n: int = 1000, seed: int = 0) -> dict[str, float]:
    """Sex AUROC and age MAE from the ground truth and from each measured feature set of the curate check."""
    d, speed = simulate_cohort(n, seed)
    out: dict[str, float] = {"n": n, "records_per_s": speed}
    sets = {"truth": [f"gt_{k}" for k in TRUTH_FEATURES], **{k: list(v) for k, v in demographics.FEATURE_SETS.items()}}
    for name, columns in sets.items():
        r = demographics.readability(d[columns], d["age"], d["sex"], d["patient_id"], seed=seed)
        out.update({f"{name}_sex_auroc": r["sex_auroc"], f"{name}_sex_balanced_accuracy": r["sex_balanced_accuracy"],
                    f"{name}_age_mae": r["age_mae"], f"{name}_age_r": r["age_r"]})
        out["mean_age_mae"] = r["age_mae_mean_predictor"]
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    t0 = time.perf_counter()
    r = report(n)
    print({k: round(v, 3) for k, v in r.items()}, f"total {time.perf_counter() - t0:.0f} s")
