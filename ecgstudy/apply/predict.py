"""``ecgstudy predict``: a classifier checkpoint applied to a folder of records, one row per record.

Records are read by the study's own readers (:mod:`ecgstudy.data.sources`), prepared with the
checkpoint's preprocessing and evaluation protocol (:mod:`ecgstudy.apply.inputs`) and scored in batches
(:mod:`ecgstudy.apply.stream`). Every catalog record gets a row, predicted or not:

==================  ======================================================================================
``record_id``       the reader's id; ``patient_id`` beside it
``status``          ``ok``, ``flagged`` (predicted; ``detail`` says what was masked or resampled) or
                    ``excluded`` (not predicted; ``reason`` and ``detail`` say why, e.g. ``missing_file``)
``leads_present``   the leads the model saw (``n_leads`` of them); the others were masked
``fs``              the record's own rate (Hz); ``duration_s`` its length; ``n_windows`` windows scored
``p_<LABEL>``       probability per label (aggregated over windows as the checkpoint's protocol says)
``decision_<LABEL>``  1 when ``p_<LABEL>`` >= the label's threshold stored in the checkpoint, else 0
==================  ======================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.apply.inputs import ApplyOptions, Prepared, Protocol, check_spec, protocol_of
from ecgstudy.apply.stream import model_outputs, prepared_records
from ecgstudy.data.sources import open_source
from ecgstudy.engine.evaluate import aggregate_windows
from ecgstudy.models.checkpoint import CheckpointError, load_classifier, read_checkpoint
from ecgstudy.progress import tqdm

#: Columns before the per-label ones.
ID_COLUMNS = ("record_id", "patient_id", "status", "reason", "detail", "leads_present", "n_leads", "fs",
              "duration_s", "n_windows")


@dataclass
class Predictions:
    """What :func:`predict_folder` produced: the table and what it was computed with."""

    table: pd.DataFrame  # one row per catalog record (module docstring)
    labels: list[str]
    thresholds: dict[str, float]  # empty when the checkpoint stores none (no decision columns then)
    protocol: Protocol
    checkpoint: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_predicted(self) -> int:
        return int((self.table["status"] != "excluded").sum())


def checkpoint_kind(path: str | Path) -> str:
    """``encoder`` or ``classifier``: the kind a checkpoint file holds (fails naming a non-checkpoint file)."""
    return read_checkpoint(path)["kind"]


def load_for_predict(path: str | Path):
    """(classifier, info) of a classifier checkpoint; a clear error for an encoder or an incomplete spec."""
    if checkpoint_kind(path) != "classifier":
        raise CheckpointError(f"{path}: holds an encoder, not a classifier: it has no labels to predict; use "
                              "`ecgstudy embed` for its embeddings, or a fine-tuned classifier (models/finetune/*.pt)")
    model, info = load_classifier(path)
    check_spec(info)
    return model, info


def stored_thresholds(info: dict[str, Any]) -> dict[str, float]:
    """Per-label thresholds stored in a classifier checkpoint (``extra.thresholds``); {} when absent."""
    stored = (info.get("extra") or {}).get("thresholds") or {}
    values = stored.get("values", {}) if isinstance(stored, dict) else {}
    unknown = sorted(set(values) - set(info["labels"]))
    if unknown:
        raise CheckpointError(f"{info.get('path')}: thresholds for unknown label(s) {unknown}")
    return {label: float(values[label]) for label in info["labels"] if label in values}


def record_row(record_id: str, patient_id: str, r: Prepared, n_windows: int) -> dict[str, Any]:
    """The id, status and input columns of one record."""
    return {"record_id": record_id, "patient_id": patient_id, "status": r.status, "reason": r.reason,
            "detail": r.detail, "leads_present": r.leads_present, "n_leads": int(r.mask.sum()) if r.mask is not None else 0,
            "fs": r.fs, "duration_s": r.duration_s, "n_windows": n_windows}


def predict_folder(
    checkpoint: str | Path,
    source: str,
    root: str | Path,
    *,
    options: ApplyOptions | None = None,
    batch_size: int = 128,
    device: str = "cpu",
    workers: int = 1,
    aggregate: str | None = None,
    progress: bool = True,
) -> Predictions:
    """Apply a classifier checkpoint to every record of ``root`` (format ``source``).

    Parameters
    ----------
    checkpoint : a classifier checkpoint the study wrote (``models/finetune/<strategy>_<fraction>.pt``)
    source, root : reader name (:data:`ecgstudy.data.sources.READERS`) and dataset folder
    options : record handling (minimum leads, lead aliases, length tolerance)
    batch_size : windows per forward pass; ``device``: torch device; ``workers``: reader processes
        (0 = one per core, 1 = in-process)
    aggregate : override the checkpoint's window aggregation (``max`` / ``mean``)
    """
    import torch

    options = options or ApplyOptions()
    options.validate()
    model, info = load_for_predict(checkpoint)
    spec, protocol = check_spec(info), protocol_of(info, aggregate)
    labels, thresholds = list(info["labels"]), stored_thresholds(info)
    reader = open_source(source, root, target_fs=int(spec["fs"]))
    catalog = reader.catalog()
    model = model.to(torch.device(device)).eval()
    records = prepared_records(reader, list(range(len(catalog))), spec, protocol, options, workers=workers)
    ids, patients = catalog["record_id"].astype(str).to_numpy(), catalog["patient_id"].astype(str).to_numpy()
    rows, probs = [], np.full((len(catalog), len(labels)), np.nan)
    bar = tqdm(total=len(catalog), desc=f"predict {Path(root).name}", unit="rec", disable=not progress)
    for r, logits in model_outputs(lambda x, m: model(x, m), records, batch_size=batch_size, device=device):
        if logits is not None:  # the evaluation's arithmetic: float64 sigmoid per window, then aggregation
            window_p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
            probs[r.position] = aggregate_windows(window_p[None], protocol.aggregate)[0]
        rows.append(record_row(ids[r.position], patients[r.position], r, 0 if logits is None else len(logits)))
        bar.update(1)
    bar.close()
    table = pd.DataFrame(rows, columns=list(ID_COLUMNS))
    table = pd.concat([table, pd.DataFrame(probs, columns=[f"p_{c}" for c in labels])], axis=1)
    for j, label in enumerate(labels):
        if label in thresholds:
            decided = np.where(np.isnan(probs[:, j]), np.nan, probs[:, j] >= thresholds[label])
            table[f"decision_{label}"] = pd.array(decided, dtype="Int8") if len(decided) else pd.array([], "Int8")
    return Predictions(table=table, labels=labels, thresholds=thresholds, protocol=protocol, checkpoint=str(checkpoint),
                       info=info)


def write_table(table: pd.DataFrame, out: str | Path) -> Path:
    """Write a result table as ``.parquet`` or ``.csv`` (by the suffix of ``out``); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        table.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        table.to_csv(out, index=False)
    else:
        raise ValueError(f"{out}: output must end in .parquet or .csv")
    return out
