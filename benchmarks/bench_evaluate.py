"""Evaluate-stage time at the default study's size: ``python benchmarks/bench_evaluate.py [--records 3000]``.

Builds synthetic score files shaped like the default study's (``--records`` records split 1:2 between the
test split and the external site, 40 labels, 4 strategies x 3 label fractions x 3 repeats; 5 pretraining
runs with their random-init twins on 300 validation records; 3 rare conditions x 3 sizes x 3 strategies x
3 repeats) and prints the seconds :func:`ecgstudy.stages.evaluate.evaluate_scores` takes with the default
settings (1,000 resamples of patients and repeats). A script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ecgstudy.engine.scores import ScoreFile
from ecgstudy.stages.evaluate import EvaluateConfig, evaluate_scores

R = 3


def _group(rng, n, n_labels, prefix):
    prevalence = rng.uniform(0.01, 0.3, n_labels)
    y = (rng.random((n, n_labels)) < prevalence).astype(np.int8)
    patients = np.array([f"{prefix}{i}" for i in rng.integers(0, int(n * 0.8), n)])
    return y, patients


def _probs(rng, y, signal):
    return (1 / (1 + np.exp(-(y * signal + rng.normal(size=y.shape))))).astype(np.float32)


def score_files(records: int, n_labels: int = 40, seed: int = 0) -> tuple[ScoreFile, ScoreFile, ScoreFile]:
    rng = np.random.default_rng(seed)
    labels = [f"L{j}" for j in range(n_labels)]
    strategies, fractions = ["pretrained", "scratch", "linear_probe", "random_probe"], [0.05, 0.25, 1.0]
    finetune = ScoreFile(meta={"strategies": strategies, "fractions": fractions, "repeats": R})
    for split, n in (("test", records // 3), ("external", records - records // 3)):
        y, patients = _group(rng, n, n_labels, split)
        finetune.add_group(split, y, patients, labels)
        for f in fractions:
            for s in strategies:
                for r in range(R):
                    finetune.add((s, f"{f:g}", f"r{r}"), split, _probs(rng, y, 1.0 + f))
    runs = ["supervised", "cmsc", "mae", "w2v", "hybrid"]
    probe = ScoreFile(meta={"comparison": [{"run": r, "objective": r, "encoder": "net1d-tiny"} for r in runs]})
    y, patients = _group(rng, 300, n_labels, "v")
    probe.add_group("val", y, patients, labels)
    for run in runs:
        for r in range(R):
            probe.add((run, f"r{r}"), "val", _probs(rng, y, 1.2))
            probe.add(("random_init", run, f"r{r}"), "val", _probs(rng, y, 0.8))
    transfer = ScoreFile(meta={"repeats": R})
    for cond in ("BRUGADA", "HYPERK", "ARVC"):
        y = (np.arange(60) < 20).astype(np.int8)[:, None]
        transfer.add_group(cond, y, [f"{cond}{i}" for i in range(60)], [cond])
        for size in ("n10", "n20", "n28"):
            for s in ("foundation", "foundation_probe", "scratch"):
                for r in range(R):
                    transfer.add((size, s, f"r{r}"), cond, _probs(rng, y, 1.0))
    return probe, finetune, transfer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000)
    args = parser.parse_args()
    files = score_files(args.records)
    start = time.perf_counter()
    result = evaluate_scores(EvaluateConfig(), *files, seed=0)
    seconds = time.perf_counter() - start
    print(f"records {args.records}, finetune arms {len(result.finetune)}, comparisons "
          f"{len(result.finetune_comparisons) + len(result.probe_comparisons) + len(result.transfer_comparisons)}: "
          f"{seconds:.1f} s with 1,000 resamples")


if __name__ == "__main__":
    main()
