"""Linear-probe comparison of pretrained encoders against the same architecture at random initialisation.

The baseline every self-supervised claim must beat is a randomly initialised encoder with a linear probe
(../shared/RESEARCH.md). For each pretrained encoder and for a random-init encoder of each architecture
and size (built with the same seed, i.e. the runs' common starting point), a linear head is fitted on
frozen pooled embeddings of whole train-split records for a fixed budget (no selection), then scored on
the validation split: macro AUROC, and the paired bootstrap difference pretrained - random init on the
same validation resamples. The test split is never read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from ecgstudy import evaluate
from ecgstudy.finetune import embed_dataset, pos_weights, train_probe
from ecgstudy.labels import task_labels
from ecgstudy.models import random_init_like
from ecgstudy.models.checkpoint import load_encoder
from ecgstudy.train import resolve_device

if TYPE_CHECKING:
    from ecgstudy.pretrain import ProbeConfig
    from ecgstudy.store import Store

COLUMNS = ["run", "objective", "encoder", "auroc", "random_auroc", "diff", "low", "high", "p_value", "n_labels", "n_val"]


def probe_comparison(
    checkpoints: dict[str, str | Path],
    store: Store,
    cfg: ProbeConfig,
    *,
    seed: int,
    device: str = "auto",
    bf16: bool = True,
) -> pd.DataFrame:
    """Validation macro AUROC of a linear probe on each encoder and on its random-init twin.

    Parameters
    ----------
    checkpoints
        Run name -> encoder checkpoint.
    store
        The curated store (train and val splits; signals (N, 12, T) at fs Hz).
    cfg
        Probe settings (task, label threshold, head optimisation, bootstrap size).
    seed
        Seeds the random-init encoders (as the runs' init), the heads and the bootstrap.

    Returns
    -------
    One row per run: run, objective, encoder (arch-preset), auroc, random_auroc, diff (auroc -
    random_auroc), low / high (95% paired bootstrap interval of diff), p_value, n_labels, n_val.
    """
    from ecgstudy.store import ECGDataset

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
    out = []
    for name, path in checkpoints.items():
        encoder, info = load_encoder(path)
        key = f"{info['spec']['arch']}-{info['spec']['preset']}"
        if key not in random_scores:
            random_scores[key] = probe_scores(random_init_like(info, seed))
        scores = probe_scores(encoder)
        gain = evaluate.paired_bootstrap(y_val, scores, random_scores[key], "auroc", n_boot=cfg.n_boot, seed=seed)
        out.append({
            "run": name, "objective": info["config"].get("objective", ""), "encoder": key,
            "auroc": evaluate.macro(y_val, scores, "auroc"), "random_auroc": evaluate.macro(y_val, random_scores[key], "auroc"),
            "diff": gain["diff"], "low": gain["low"], "high": gain["high"], "p_value": gain["p_value"],
            "n_labels": len(tl.names), "n_val": int(len(rows["val"])),
        })
    return pd.DataFrame(out, columns=COLUMNS)
