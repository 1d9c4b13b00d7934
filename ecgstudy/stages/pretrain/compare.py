"""Linear-probe comparison of pretrained encoders against the same architecture at random initialisation.

The baseline every self-supervised claim must beat is a randomly initialised encoder with a linear probe
(docs/architecture.md, "Baselines"). Each pretrained encoder is compared with its own random-init twin:
the run's starting weights with batch-norm statistics re-estimated on the same records (written by the
pretrain stage beside the run's checkpoint, :func:`ecgstudy.stages.common.random_twin`). For every encoder
and twin alike, a linear head's weight decay is chosen from ``probe.weight_decay_grid`` by cross-validation
over patients of the train split (the validation split is the reported one, so it chooses nothing), then
``probe.repeats`` heads (seed + k) are fitted on frozen pooled embeddings of whole train-split records for
a fixed budget and scored on the validation split. The repeats share the training records: they differ
by seed only. Every repeat's validation probabilities are kept (:class:`~ecgstudy.engine.scores.ScoreFile`,
keys ``(run, "r<k>")`` and ``("random_init", run, "r<k>")``) for the evaluate stage's intervals. The
test split is never read here; an encoder pretrained on any validation record is refused.

Objectives run on two architectures (CNN, transformer): a difference between runs on different encoders
mixes objective and architecture, so the table's ``same_encoder`` column lists the runs that share each
run's encoder (the only objective comparisons free of that confound).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from ecgstudy.engine import evaluate
from ecgstudy.engine.probes import embed_dataset, pos_weights, train_probe
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.data.labels import task_labels
from ecgstudy.engine.train import resolve_device
from ecgstudy.engine.tuning import Search, cv_probe_weight_decay, repeat_seed
from ecgstudy.models.checkpoint import load_encoder
from ecgstudy.stages.common import check_pretraining_leak, random_twin

if TYPE_CHECKING:
    from ecgstudy.stages.pretrain import ProbeConfig
    from ecgstudy.data.store import Store

COLUMNS = ["run", "objective", "encoder", "same_encoder", "auroc", "random_auroc", "diff", "auroc_sd_repeats",
           "random_auroc_sd_repeats", "repeats", "weight_decay", "random_weight_decay", "n_labels", "n_val"]


def probe_comparison(
    checkpoints: dict[str, str | Path],
    store: Store,
    cfg: ProbeConfig,
    *,
    seed: int,
    device: str = "auto",
    bf16: bool = True,
) -> tuple[pd.DataFrame, ScoreFile]:
    """Validation macro AUROC of linear probes on each encoder and on its random-init twin, over repeats.

    Parameters
    ----------
    checkpoints
        Run name -> encoder checkpoint (its twin lies beside it).
    store
        The curated store probed (train and val splits; signals (N, 12, T) at fs Hz).
    cfg
        Probe settings (task, label threshold, head optimisation, repeats, weight-decay grid, CV folds).
    seed
        Seeds the folds and the heads (repeat k: seed + k).

    Returns
    -------
    One row per run (:data:`COLUMNS`): mean validation AUROC over repeats of the run and of its twin,
    their difference, the spread over repeats, the chosen weight decays; and the validation probabilities
    (N_val, L) of every repeat (keys ``(run, "r<k>")``, ``("random_init", run, "r<k>")``, group ``val``),
    with ``meta`` holding ``repeats``, ``tuning`` (every search) and the rows.
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
    patients = store.records["patient_id"].astype(str).to_numpy()
    weight = pos_weights(y_train)
    dev = str(resolve_device(device))

    def probe(encoder: torch.nn.Module) -> tuple[list[np.ndarray], Search]:
        z = {s: embed_dataset(encoder, ds, bf16=bf16, device=dev) for s, ds in data.items()}
        search = cv_probe_weight_decay(z["train"], y_train, patients[rows["train"]], cfg.optim, list(cfg.weight_decay_grid),
                                       seed=seed, folds=cfg.cv_folds, pos_weight=weight)
        chosen = dataclasses.replace(cfg.optim, weight_decay=search.chosen)
        out = []
        for k in range(cfg.repeats):
            model, _ = train_probe(encoder, z["train"], y_train, None, None, chosen, seed=repeat_seed(seed, k), pos_weight=weight)
            with torch.no_grad():
                out.append(torch.sigmoid(model.head(torch.as_tensor(z["val"]))).numpy())
        return out, search

    kept = ScoreFile(meta={"task": cfg.task, "repeats": cfg.repeats, "tuning": {},
                           "repeat_design": "probe heads with seed + k on the same training records (seed only)"})
    kept.add_group("val", y_val, patients[rows["val"]], list(tl.names))
    infos = {name: load_encoder(path) for name, path in checkpoints.items()}
    encoders = {name: f"{info['spec']['arch']}-{info['spec']['preset']}" for name, (_, info) in infos.items()}
    out, probed_twins = [], []  # twins already probed: runs of one architecture on the same records share theirs
    for name, (encoder, info) in infos.items():
        check_pretraining_leak(info, store, {"val": rows["val"]}, checkpoints[name])
        twin, how = random_twin(checkpoints[name], info)
        scores, search = probe(encoder)
        same = [done for other, done in probed_twins if _same_weights(other, twin)]
        random_scores, random_search = same[0] if same else probe(twin)  # identical inputs give identical results
        probed_twins.append((twin, (random_scores, random_search)))
        kept.meta["tuning"][name] = search.record()
        kept.meta["tuning"][f"random_init/{name}"] = {**random_search.record(), "twin": how}
        for k in range(cfg.repeats):
            kept.add((name, f"r{k}"), "val", scores[k])
            kept.add(("random_init", name, f"r{k}"), "val", random_scores[k])
        auroc = [evaluate.macro(y_val, p, "auroc") for p in scores]
        random_auroc = [evaluate.macro(y_val, p, "auroc") for p in random_scores]
        out.append({
            "run": name, "objective": info["config"].get("objective", ""), "encoder": encoders[name],
            "same_encoder": " ".join(n for n, e in encoders.items() if e == encoders[name] and n != name),
            "auroc": float(np.mean(auroc)), "random_auroc": float(np.mean(random_auroc)),
            "diff": float(np.mean(auroc) - np.mean(random_auroc)), "auroc_sd_repeats": float(np.std(auroc)),
            "random_auroc_sd_repeats": float(np.std(random_auroc)), "repeats": cfg.repeats,
            "weight_decay": search.chosen, "random_weight_decay": random_search.chosen,
            "n_labels": len(tl.names), "n_val": int(len(rows["val"])),
        })
    kept.meta["comparison"] = out
    return pd.DataFrame(out, columns=COLUMNS), kept


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two encoders hold identical tensors (weights and batch-norm statistics) under the same names."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa)
