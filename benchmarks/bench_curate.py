"""Curation throughput and memory: ``python benchmarks/bench_curate.py [--records 2000]``.

Builds a PTB-XL-shaped folder with the simulator (``--records`` records at 500 Hz + 100 Hz), then prints
for subsets of two sizes (half and all records): records/s and peak memory of the streaming curation
(records500 -> 100 Hz store) against a naive per-record ``wfdb.rdsamp`` + ``numpy.stack`` loop. Each
measurement runs in a fresh process so that peak RSS belongs to it alone. Curation memory must not grow
with N (the naive loop's does). A script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

CURATE = """
import json, resource, sys, time
from ecgstudy.data.curation import CurateConfig, curate
root, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
s = curate("ptbxl", root, out, CurateConfig(resolution="records500", n_workers=workers), progress=False)
dt = time.perf_counter() - t
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"seconds": dt, "n": s["n_catalog"], "peak_mb": peak / 1024}))
"""

NAIVE = """
import json, resource, sys, time
import numpy as np, pandas as pd, wfdb
from scipy.signal import resample_poly
root = sys.argv[1]
db = pd.read_csv(f"{root}/ptbxl_database.csv", index_col="ecg_id")
t = time.perf_counter()
x = np.stack([resample_poly(wfdb.rdsamp(f"{root}/{f}")[0].T, 1, 5, axis=-1) for f in db["filename_hr"]]).astype("float32")
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "n": len(db), "peak_mb": peak / 1024}))
"""


def subset(root: Path, n: int, dest: Path) -> Path:
    """A PTB-XL-shaped view of the first ``n`` records of ``root`` (links to the record folders)."""
    dest.mkdir(parents=True)
    db = pd.read_csv(root / "ptbxl_database.csv", index_col="ecg_id")
    db.iloc[:n].to_csv(dest / "ptbxl_database.csv")
    for name in ("scp_statements.csv", "records100", "records500"):
        os.symlink(root / name, dest / name)
    return dest


def run(code: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000, help="records of the simulated folder (>= 2000)")
    parser.add_argument("--workers", type=int, default=0, help="curation reader processes (0 = one per core)")
    args = parser.parse_args()
    from ecgstudy import config
    from ecgstudy.simulate import SimulateConfig, write_cohort

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sim = config.from_dict(
            SimulateConfig,
            {"sizes": {"foundation": {"patients": 1, "records": 1},
                       "downstream": {"patients": int(args.records * 0.8), "records": args.records},
                       "external": {"patients": 1, "records": 1}},
             "rare": {"n_cases": 1, "n_controls": 1}},
            "simulate",
        )
        root = write_cohort(sim, tmp / "raw", seed=1) / "downstream"
        print(f"cohort: {args.records} records, PTB-XL layout, 12 leads x 10 s at 500 Hz (+100 Hz copy); {os.cpu_count()} cores")
        print(f"{'N':>6} {'method':<28} {'seconds':>8} {'records/s':>10} {'peak MB':>8}")
        for n in (args.records // 2, args.records):
            view = subset(root, n, tmp / f"view{n}")
            ours = run(CURATE, str(view), str(tmp / f"store{n}"), str(args.workers))
            naive = run(NAIVE, str(view))
            for name, r in (("ecgstudy curate (500->100 Hz)", ours), ("naive rdsamp + stack", naive)):
                print(f"{n:>6} {name:<28} {r['seconds']:>8.1f} {r['n'] / r['seconds']:>10.0f} {r['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
