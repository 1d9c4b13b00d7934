"""``ecgstudy embed``: an encoder checkpoint's embeddings of a folder of records, for one's own UMAP, probes
or retrieval.

Records are prepared as for ``predict`` (:mod:`ecgstudy.apply.inputs`, the checkpoint's preprocessing);
a record's embedding is the mean of its windows' pooled embeddings (one window for records of the
training store's length). Every catalog record gets a row: excluded records have NaN embeddings and
their reason. Outputs: a ``.parquet`` table (the id columns of :mod:`ecgstudy.apply.predict` plus
``e_0`` ... ``e_<D-1>``), or a ``.npy`` float32 (N, D) array with an ``<out>.ids.csv`` of the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecgstudy.apply.inputs import ApplyOptions, check_spec, protocol_of
from ecgstudy.apply.predict import ID_COLUMNS, checkpoint_kind, record_row, write_table
from ecgstudy.apply.stream import model_outputs, prepared_records
from ecgstudy.data.sources import open_source
from ecgstudy.models.checkpoint import CheckpointError, load_encoder
from ecgstudy.progress import tqdm


def embed_folder(
    checkpoint: str | Path,
    source: str,
    root: str | Path,
    *,
    options: ApplyOptions | None = None,
    batch_size: int = 128,
    device: str = "cpu",
    workers: int = 1,
    allow_classifier: bool = False,
    progress: bool = True,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Embeddings of every record of ``root`` (format ``source``) by an encoder checkpoint.

    ``allow_classifier`` accepts a classifier checkpoint and embeds with its fine-tuned encoder.

    Returns
    -------
    (ids table: one row per catalog record, the id columns of :data:`ecgstudy.apply.predict.ID_COLUMNS`;
    embeddings float32 (N, D), rows in the table's order, NaN for excluded records)
    """
    import torch

    options = options or ApplyOptions()
    options.validate()
    kind = checkpoint_kind(checkpoint)
    if kind != "encoder" and not allow_classifier:
        raise CheckpointError(f"{checkpoint}: holds a {kind}, not an encoder; use `ecgstudy predict` for its "
                              "probabilities, or pass --allow-classifier to embed with its fine-tuned encoder")
    encoder, info = load_encoder(checkpoint)
    spec, protocol = check_spec(info), protocol_of(info)
    reader = open_source(source, root, target_fs=int(spec["fs"]))
    catalog = reader.catalog()
    encoder = encoder.to(torch.device(device)).eval()
    ids, patients = catalog["record_id"].astype(str).to_numpy(), catalog["patient_id"].astype(str).to_numpy()
    z = np.full((len(catalog), int(encoder.embed_dim)), np.nan, dtype=np.float32)
    rows = []
    records = prepared_records(reader, list(range(len(catalog))), spec, protocol, options, workers=workers)
    bar = tqdm(total=len(catalog), desc=f"embed {Path(root).name}", unit="rec", disable=not progress)
    for r, out in model_outputs(lambda x, m: encoder.embed(x, m), records, batch_size=batch_size, device=device):
        if out is not None:
            z[r.position] = out.mean(axis=0)
        rows.append(record_row(ids[r.position], patients[r.position], r, 0 if out is None else len(out)))
        bar.update(1)
    bar.close()
    return pd.DataFrame(rows, columns=list(ID_COLUMNS)), z


def write_embeddings(table: pd.DataFrame, z: np.ndarray, out: str | Path) -> list[Path]:
    """``.parquet``: ids + ``e_<k>`` columns; ``.npy``: the array plus ``<out>.ids.csv``. Returns the paths."""
    out = Path(out)
    if out.suffix == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, z)
        ids = out.with_suffix(".ids.csv")
        table.to_csv(ids, index=False)
        return [out, ids]
    if out.suffix != ".parquet":
        raise ValueError(f"{out}: embeddings go to a .parquet table or a .npy array")
    columns = pd.DataFrame(z, columns=[f"e_{k}" for k in range(z.shape[1])])
    return [write_table(pd.concat([table.reset_index(drop=True), columns], axis=1), out)]
