"""Linear-probe comparison of pretrained encoders against the same architecture at random initialisation.

The baseline every self-supervised claim must beat is a randomly initialised encoder with a linear probe
(docs/architecture.md, "Baselines"). For each pretrained encoder and for a random-init encoder of each architecture
and size (built with the same seed, i.e. the runs' common starting point), a linear head is fitted on
frozen pooled embeddings of whole train-split records for a fixed budget (no selection), then scored on
the validation split: macro AUROC of each, and their difference. The validation probabilities are kept
(:class:`~ecgstudy.engine.scores.ScoreFile`) so the evaluate stage can put a paired bootstrap interval on
the difference. The test split is never read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from ecgstudy.engine import evaluate
from ecgstudy.engine.probes import embed_dataset, pos_weights, train_probe
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.data.labels import task_labels
from ecgstudy.models import random_init_like
from ecgstudy.models.checkpoint import load_encoder
from ecgstudy.engine.train import resolve_device

if TYPE_CHECKING:
    from ecgstudy.stages.pretrain import ProbeConfig
    from ecgstudy.data.store import Store

COLUMNS = ["run", "objective", "encoder", "auroc", "random_auroc", "diff", "n_labels", "n_val"]


def probe_comparison(
    checkpoints: dict[str, str | Path],
    store: Store,
    cfg: ProbeConfig,
    *,
    seed: int,
    device: str = "auto",
    bf16: bool = True,
) -> tuple[pd.DataFrame, ScoreFile]:
    """Validation macro AUROC of a linear probe on each encoder and on its random-init twin.

    Parameters
    ----------
    checkpoints
        Run name -> encoder checkpoint.
    store
        The curated store (train and val splits; signals (N, 12, T) at fs Hz).
    cfg
        Probe settings (task, label threshold, head optimisation).
    seed
        Seeds the random-init encoders (as the runs' init) and the heads.

    Returns
    -------
    One row per run: run, objective, encoder (arch-preset), auroc, random_auroc, diff (auroc -
    random_auroc), n_labels, n_val; and the validation probabilities (N_val, L) of every run (key
    ``(run, "r0")``) and random-init twin (key ``("random_init", run, "r0")``), group ``val``.
    """
    from ecgstudy.data.store import ECGDataset

    train_rows = np.asarray(store.indices("train"))
    tl = task_labels(store, cfg.task, cfg.min_positives, within=train_rows)
    if not tl.names:
        raise ValueError(f"{store.path}: no {cfg.task!r} label has {cfg.min_positives} train positives to probe")
    rows = {s: np.asarray([i for i in store.indices(s) if tl.keep[i]], dtype=np.int64) for s in ("train", "val")}
    if len(rows["val"]) == 0:
        raise ValueError(f"{store.path}: the validation split has no {cfg.task!r} labels for the probe comparison")
    data = {s: ECGDataset(store, idx, labels=tl.y) for s, idx in rows.items()}
    y_train, y_val = data["train"].y, data["val"].y
    weight = pos_weights(y_train)
    dev = str(resolve_device(device))

    def probe_scores(encoder: torch.nn.Module) -> np.ndarray:
        z = {s: embed_dataset(encoder, ds, bf16=bf16, device=dev) for s, ds in data.items()}
        model, _ = train_probe(encoder, z["train"], y_train, None, None, cfg.optim, seed=seed, pos_weight=weight)
        with torch.no_grad():
            return torch.sigmoid(model.head(torch.as_tensor(z["val"]))).numpy()

    random_scores: dict[str, np.ndarray] = {}
    kept = ScoreFile(meta={"task": cfg.task})
    kept.add_group("val", y_val, store.records["patient_id"].astype(str).to_numpy()[rows["val"]], list(tl.names))
    out = []
    for name, path in checkpoints.items():
        encoder, info = load_encoder(path)
        key = f"{info['spec']['arch']}-{info['spec']['preset']}"
        if key not in random_scores:
            random_scores[key] = probe_scores(random_init_like(info, seed))
        kept.add(("random_init", name, "r0"), "val", random_scores[key])  # each run's twin; r<k>: engine.scores
        scores = probe_scores(encoder)
        kept.add((name, "r0"), "val", scores)
        auroc, random_auroc = evaluate.macro(y_val, scores, "auroc"), evaluate.macro(y_val, random_scores[key], "auroc")
        out.append({
            "run": name, "objective": info["config"].get("objective", ""), "encoder": key, "auroc": auroc,
            "random_auroc": random_auroc, "diff": auroc - random_auroc, "n_labels": len(tl.names), "n_val": int(len(rows["val"])),
        })
    kept.meta["comparison"] = out
    return pd.DataFrame(out, columns=COLUMNS), kept
