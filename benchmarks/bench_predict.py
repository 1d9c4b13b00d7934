"""``ecgstudy predict`` throughput and memory: ``python benchmarks/bench_predict.py [--records 1000]``.

Writes a WFDB folder of ``--records`` ten-second 12-lead records at 500 Hz (format 16), and a classifier
checkpoint with the study's default preprocessing (100 Hz, 10 s, per-lead z-score; net1d-tiny, untrained:
the weights do not change the cost). Then, each in a fresh process so that peak RSS belongs to it alone,
runs :func:`ecgstudy.apply.predict.predict_folder` on a quarter of the folder and on all of it and prints
records/s and peak memory. Memory must not grow with the folder (records stream through; only the result
table grows, by a few hundred bytes per record). A script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PREDICT = """
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[4]))
from ecgstudy.apply.predict import predict_folder
t = time.perf_counter()
out = predict_folder(sys.argv[1], "wfdb", sys.argv[2], batch_size=int(sys.argv[3]), workers=int(sys.argv[5]),
                     progress=False)
dt = time.perf_counter() - t
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"n": len(out.table), "predicted": out.n_predicted, "seconds": dt, "peak_mb": peak / 1024}))
"""


def write_folder(root: Path, n: int, fs: int = 500, seconds: float = 10.0, seed: int = 0) -> Path:
    """``n`` WFDB records (.hea + format-16 .dat) of beat-like 12-lead signals in mV."""
    import wfdb

    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    for i in range(n):
        rate = rng.uniform(0.8, 1.6)
        beats = np.exp(-(((t * rate + rng.uniform()) % 1.0 - 0.5) ** 2) / 0.001)
        sig = beats[:, None] * rng.normal(1.0, 0.3, 12)[None] + rng.normal(0, 0.03, (t.size, 12))
        folder = root / f"{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(f"r{i:05d}", fs=fs, units=["mV"] * 12, sig_name=names, p_signal=sig, fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
    return root


def subset(root: Path, n: int, dest: Path) -> Path:
    """A folder linking to the first ``n`` records of ``root``."""
    headers = sorted(root.rglob("*.hea"))[:n]
    for hea in headers:
        target = dest / hea.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        for f in (hea, hea.with_suffix(".dat")):
            os.symlink(f, target.with_suffix(f.suffix))
    return dest


def write_checkpoint(path: Path) -> Path:
    import torch

    from ecgstudy.data.curate_config import CurateConfig
    from ecgstudy.models import build_encoder
    from ecgstudy.models.checkpoint import save_checkpoint
    from ecgstudy.models.heads import Classifier

    cfg = CurateConfig()
    torch.manual_seed(0)
    model = Classifier(build_encoder("net1d", "tiny"), 5)
    spec = {**cfg.preprocessing(), "fs": cfg.fs, "n_samples": cfg.n_samples}
    return save_checkpoint(path, model, config={"eval_window_s": None}, preprocessing=spec,
                           labels=["NORM", "MI", "STTC", "CD", "HYP"], extra={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the predicting process")
    parser.add_argument("--workers", type=int, default=1, help="reader processes (1 = in-process)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = write_folder(tmp / "records", args.records)
        checkpoint = write_checkpoint(tmp / "classifier.pt")
        rows = []
        for n in (max(1, args.records // 4), args.records):
            folder = subset(root, n, tmp / f"n{n}")
            result = subprocess.run([sys.executable, "-c", PREDICT, str(checkpoint), str(folder), str(args.batch_size),
                                     str(args.threads), str(args.workers)], capture_output=True, text=True, check=True)
            stats = json.loads(result.stdout.strip().splitlines()[-1])
            stats["records_per_s"] = stats["n"] / stats["seconds"]
            rows.append(stats)
            print(f"{n:6d} records: {stats['records_per_s']:7.1f} records/s, {stats['seconds']:6.1f} s, "
                  f"peak {stats['peak_mb']:6.0f} MB ({stats['predicted']} predicted)")
        growth = rows[1]["peak_mb"] - rows[0]["peak_mb"]
        print(f"peak memory growth from {rows[0]['n']} to {rows[1]['n']} records: {growth:+.0f} MB")


if __name__ == "__main__":
    main()
