"""Synthetic score files shaped like the training stages' (R repeats per arm), with known effects."""

from __future__ import annotations

import numpy as np

from ecgstudy.engine.scores import ScoreFile

LABELS = ["NORM", "MI", "AFIB", "LVH", "CLBBB", "RARE"]


def _set(rng, n_patients, records_per_patient, prevalence):
    patients = np.repeat([f"p{i}" for i in range(n_patients)], records_per_patient)
    y = (rng.random((len(patients), len(prevalence))) < prevalence).astype(np.int8)
    return y, patients


def _scores(rng, y, signal, repeat_noise=0.0):
    """Probabilities that rank positives higher by ``signal`` sd, plus a repeat-specific shift per label."""
    z = y * signal + rng.normal(size=y.shape) + repeat_noise * rng.normal(size=(1, y.shape[1])) * (2 * y - 1)
    return 1.0 / (1.0 + np.exp(-z))


def finetune_scores(seed=0, repeats=3, n_patients=120, signals=None):
    """Groups test and external; strategies x fractions (0.1, 1) x repeats; label RARE has 2 positives per split.

    ``signals[(strategy, fraction)]``: separation in sd (default: pretrained 1.5 at 0.1, scratch 0.3 at 0.1,
    the probes 0.8 each, 1.0 at full labels).
    """
    rng = np.random.default_rng(seed)
    strategies = ["pretrained", "scratch", "linear_probe", "random_probe"]
    fractions = [0.1, 1.0]
    signals = signals or {("pretrained", 0.1): 1.5, ("scratch", 0.1): 0.3, ("linear_probe", 0.1): 0.8,
                          ("random_probe", 0.1): 0.8}
    out = ScoreFile(meta={"task": "all", "strategies": strategies, "fractions": fractions, "repeats": repeats,
                          "tuning": {"lr_grid": [1e-3, 3e-3]}})
    prevalence = np.array([0.4, 0.2, 0.15, 0.25, 0.1, 0.0])
    for split in ("test", "external"):
        y, patients = _set(rng, n_patients, 2, prevalence)
        y[:2, 5] = 1  # RARE: 2 positive records (one patient): below any k >= 3
        out.add_group(split, y, patients, LABELS)
        for fraction in fractions:
            for strategy in strategies:
                signal = signals.get((strategy, fraction), 1.0)
                for r in range(repeats):
                    out.add((strategy, f"{fraction:g}", f"r{r}"), split, _scores(rng, y, signal, 0.2))
    return out


def probe_scores(seed=1, repeats=3):
    """Group val; runs cmsc (contrastive), mae (generative), each with its random-init twin."""
    rng = np.random.default_rng(seed)
    y, patients = _set(rng, 150, 1, np.array([0.3, 0.2, 0.2, 0.1, 0.15, 0.0]))
    y[:1, 5] = 1
    out = ScoreFile(meta={"task": "all", "repeats": repeats, "comparison": [
        {"run": "cmsc", "objective": "cmsc", "encoder": "net1d-tiny"},
        {"run": "mae", "objective": "mae", "encoder": "net1d-tiny"},
    ]})
    out.add_group("val", y, patients, LABELS)
    for run, signal in (("cmsc", 1.2), ("mae", 1.2)):
        for r in range(repeats):
            out.add((run, f"r{r}"), "val", _scores(rng, y, signal, 0.1))
            out.add(("random_init", run, f"r{r}"), "val", _scores(rng, y, 0.5, 0.1))
    return out


def transfer_scores(seed=2, repeats=3):
    """Two conditions (one label each), sizes n5 and n10, foundation >> scratch."""
    rng = np.random.default_rng(seed)
    out = ScoreFile(meta={"repeats": repeats})
    for cond in ("BRUGADA", "HYPERK"):
        y = np.zeros((60, 1), np.int8)
        y[:20] = 1
        out.add_group(cond, y, [f"{cond}{i}" for i in range(60)], [cond])
        for size in ("n5", "n10"):
            for strategy, signal in (("foundation", 2.0), ("foundation_probe", 1.0), ("scratch", 0.0)):
                for r in range(repeats):
                    out.add((size, strategy, f"r{r}"), cond, _scores(rng, y, signal))
    return out


LATENT = {"knn_auroc_gain_over_random": 0.05, "knn_auroc_gain_low": 0.02, "knn_auroc_gain_high": 0.08,
          "knn_auroc_gain_level": 0.95, "n_labels": 18,
          "statistics": {"n_boot": 1000, "n_patients": 900, "repeats": 1}}
# integrated gradients localise better than chance (0.5) but not better than |x| (0.7): the claim is the
# paired difference to |x|, not to chance
SALIENCY = {"n_conditions": 15, "n_patients": 40, "integrated_gradients": {"auroc": 0.72, "auroc_lo": 0.69, "auroc_hi": 0.75},
            "signal_magnitude": {"auroc": 0.7},
            "paired": {"integrated_gradients": {"auroc": {"diff": 0.02, "low": -0.01, "high": 0.05, "level": 0.975,
                                                          "n_pairs": 60, "family_size": 2}}},
            "statistics": {"n_boot": 1000, "repeats": 1}}
